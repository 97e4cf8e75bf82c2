-- tx
UPDATE {t} SET n = 'NaN', nr = $10 / 7.0, nf = $10 / 3.0 WHERE id = $1;
-- tx
UPDATE {t} SET n = $10 * 1.000 WHERE id = $2;
-- tx
INSERT INTO {t} VALUES ($9, '-Infinity', 0, 'Infinity', 0);
