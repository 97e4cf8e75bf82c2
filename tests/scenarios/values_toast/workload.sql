-- tx
UPDATE {t} SET big = repeat('u' || $10, 20000) WHERE id = $1;
-- tx
UPDATE {t} SET w = $10 WHERE id = $2;
-- tx
INSERT INTO {t} VALUES ($9, repeat('n', 100000), NULL, 0);
-- tx
DELETE FROM {t} WHERE id = $3;
