-- tx weight=3
UPDATE {t} SET day = ($10 % 400) WHERE id = $1;
-- tx weight=2
UPDATE {t} SET v = v + 1, site = CASE WHEN $10 % 2 = 0 THEN 'n' ELSE 's' END WHERE id IN ($2, $3);
-- tx
DELETE FROM {t} WHERE id = $4;
-- tx
INSERT INTO {t} VALUES ($9, $10 % 400, 'n', 1.5);
