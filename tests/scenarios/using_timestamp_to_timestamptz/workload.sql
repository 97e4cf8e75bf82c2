-- A literal with +00 means the same instant in both types under this USING.
-- tx
UPDATE {t} SET at = '2024-06-01 10:00:00+00' WHERE id = $1;
-- tx weight=2
UPDATE {t} SET note = 'u' || $10 WHERE id = $2;
-- tx
INSERT INTO {t} VALUES ($9, '2025-01-01 00:00:00+00', 'new');
