-- tx weight=2
UPDATE {t} SET id = id + 1000 WHERE id = $1;
-- tx weight=2
UPDATE {t} SET id = id - 1000 WHERE id = $1 + 1000;
-- tx
SELECT 1 FROM {t} WHERE id BETWEEN $2 AND $2 + 4 ORDER BY id FOR UPDATE;
UPDATE {t} SET id = id + 1000 WHERE id BETWEEN $2 AND $2 + 4;
-- tx
UPDATE {t} SET v = v + 1 WHERE id IN ($3, $3 + 1000);
