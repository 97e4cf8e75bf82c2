-- tx weight=3
UPDATE {t} SET day = ($10 % 400) WHERE id = $1;
-- tx weight=2
UPDATE {t} SET v = v + 1 WHERE id IN ($2, $3);
-- tx
DELETE FROM {t} WHERE id = $4;
-- tx
INSERT INTO {t} VALUES ($9, $10 % 400, 1.5, 'new');
-- tx
INSERT INTO {t} VALUES ($9, 100 + $10 % 150, 2.5, 'mid');
