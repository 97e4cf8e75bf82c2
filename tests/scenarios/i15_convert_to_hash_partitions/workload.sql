-- tx weight=3
UPDATE {t} SET seen = seen + interval '1 second', data = md5($10::text) WHERE id = $1;
-- tx weight=2
UPDATE {t} SET user_id = $10 % 97 WHERE id IN ($2, $3);
-- tx
DELETE FROM {t} WHERE id = $4;
-- tx
INSERT INTO {t} VALUES ($9, $10 % 97, timestamptz '2026-06-01', NULL);
