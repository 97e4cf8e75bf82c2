-- tx weight=2
DELETE FROM sale WHERE store_id = $1;
DELETE FROM {t} WHERE id = $1;
-- tx
DELETE FROM sale WHERE store_id IN (SELECT id FROM store WHERE region_id = $2 % 50 + 1);
DELETE FROM {t} WHERE region_id = $2 % 50 + 1;
DELETE FROM region WHERE id = $2 % 50 + 1;
-- tx weight=2
INSERT INTO region VALUES ($9);
INSERT INTO {t} VALUES ($9, $9, 'new');
INSERT INTO sale VALUES ($9, $9, 1);
