-- tx weight=3
UPDATE {t} SET created_at = timestamp '2025-11-03' + ($10 % 110) * interval '1 day' WHERE id = $1;
-- tx weight=2
UPDATE {t} SET value = $10 WHERE id IN ($2, $3);
-- tx
DELETE FROM {t} WHERE id = $4;
-- tx
INSERT INTO {t} VALUES ($9, timestamp '2025-11-15' + ($10 % 80) * interval '1 day', 1, NULL);
