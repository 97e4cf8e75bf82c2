-- tx
UPDATE {t} SET created_on = date '2026-01-01' + ($10 % 100) WHERE id = $1;
-- tx
INSERT INTO {t} VALUES ($9, date '2026-01-01' + ($10 % 120), 'k1');
