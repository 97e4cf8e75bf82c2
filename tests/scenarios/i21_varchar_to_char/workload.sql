-- tx
UPDATE {t} SET code = 'U' || $10 WHERE id = $1;
-- tx
UPDATE {t} SET n = $10 WHERE id = $1;
-- tx
INSERT INTO {t} VALUES ($9, 'I' || $10, $10);
-- tx
DELETE FROM {t} WHERE id = $2;
