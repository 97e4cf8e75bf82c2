-- tx weight=2
UPDATE {t} SET sensor = $10 % 50 WHERE id = $1;
-- tx
DELETE FROM {t} WHERE id = $2;
-- tx
INSERT INTO {t} VALUES ($9, $10 % 50, 1.5);
