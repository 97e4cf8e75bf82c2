-- tx weight=2
INSERT INTO {t} VALUES ($9, $1, 'new');
-- tx
DELETE FROM {t} WHERE id IN (SELECT id FROM {t} WHERE parent_id = $2 AND id > 1000000 ORDER BY id FOR UPDATE);
-- tx
UPDATE {t} SET parent_id = $3 WHERE id = $4 + 600 AND $4 + 600 > $3;
-- tx
UPDATE {t} SET name = 'r' || $10 WHERE id = $5;
