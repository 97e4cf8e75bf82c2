-- tx
UPDATE {t} SET d = '-0', r = 'NaN' WHERE id = $1;
-- tx
UPDATE {t} SET d = $10 / 3.0, w = $10 WHERE id = $2;
-- tx
INSERT INTO {t} VALUES ($9, '-Infinity', '-0', 1.5, 0);
