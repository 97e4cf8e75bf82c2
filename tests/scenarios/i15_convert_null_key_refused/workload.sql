-- tx
UPDATE {t} SET kind = 'k' || ($10 % 4) WHERE id = $1;
-- tx
INSERT INTO {t} VALUES ($9, date '2026-01-01' + ($10 % 50), 'k1');
