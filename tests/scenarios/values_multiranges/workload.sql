-- tx
UPDATE {t} SET m = m + int4multirange(int4range($10, $10 + 3)) WHERE id = $1;
-- tx
UPDATE {t} SET dm = '{[2024-01-01,2024-01-05), [2024-02-01,)}' WHERE id = $2;
-- tx
INSERT INTO {t} VALUES ($9, '{}', NULL, 0);
