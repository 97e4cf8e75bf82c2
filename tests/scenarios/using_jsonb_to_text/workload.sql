-- doc is written in jsonb's canonical text, which both types store alike.
-- tx
UPDATE {t} SET doc = '{"n": $10}' WHERE id = $1;
-- tx weight=2
UPDATE {t} SET note = 'u' || $10 WHERE id = $2;
-- tx
INSERT INTO {t} VALUES ($9, '{"new": true}', NULL, 'new');
