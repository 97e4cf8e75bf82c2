-- tx weight=3
UPDATE {t} SET created_on = date '2026-01-01' + ($10 % 100) WHERE id = $1;
-- tx weight=2
UPDATE {t} SET payload = jsonb_build_object('u', $10) WHERE id IN ($2, $3);
-- tx
DELETE FROM {t} WHERE id = $4;
-- tx
INSERT INTO {t} VALUES ($9, date '2026-01-01' + ($10 % 120), 'k' || ($10 % 4), NULL);
