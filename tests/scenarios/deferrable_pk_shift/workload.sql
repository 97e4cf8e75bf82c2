-- tx
UPDATE {t} SET id = id + 1 WHERE id >= $1;
-- tx weight=2
UPDATE {t} SET v = 'u' || $10 WHERE id = $2;
-- tx
DELETE FROM {t} WHERE id = $3;
