-- tx
UPDATE {t} SET r = int4range(least($1, $2), greatest($1, $2), '[]'), n = '(,$10)' WHERE id = $3;
-- tx
UPDATE {t} SET tr = '[2024-01-01 00:00+00,2024-01-02 00:00+00)' WHERE id = $4;
-- tx
INSERT INTO {t} VALUES ($9, 'empty', NULL, '(,)', 0);
