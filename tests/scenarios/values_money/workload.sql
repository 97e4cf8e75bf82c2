-- tx
UPDATE {t} SET m = $10 WHERE id = $1;
-- tx
INSERT INTO {t} VALUES ($9, -$10, 0);
-- tx
DELETE FROM {t} WHERE id = $2;
