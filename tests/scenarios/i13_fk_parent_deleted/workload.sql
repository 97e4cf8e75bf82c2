-- tx weight=2
DELETE FROM {t} WHERE parent_id = $1;
DELETE FROM parent WHERE id = $1;
-- tx
INSERT INTO parent VALUES ($9, 'new');
INSERT INTO {t} VALUES ($9, $9, 1);
INSERT INTO {t} VALUES (-$9, $9, 2);
-- tx weight=2
UPDATE {t} SET v = v + 1 WHERE id = $2 * 10;
