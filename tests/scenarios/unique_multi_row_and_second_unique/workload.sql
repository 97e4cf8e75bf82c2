-- tx
INSERT INTO {t} VALUES ($9, 'c' || $9, 1), (-$9, 'c-' || $9, 2), (-$9 - 500000000, 'd' || $9, 3);
-- tx
DELETE FROM {t} WHERE id IN (SELECT id FROM {t} WHERE id BETWEEN $1 AND $1 + 2 ORDER BY id FOR UPDATE);
-- tx weight=2
DELETE FROM {t} WHERE code = 'c' || $2;
INSERT INTO {t} VALUES ($9, 'c' || $2, $10) ON CONFLICT (code) DO NOTHING;
-- tx weight=2
UPDATE {t} SET code = 'c' || $3 || 'b' WHERE code = 'c' || $3;
UPDATE {t} SET code = 'c' || $3 WHERE code = 'c' || $3 || 'b';
-- tx
UPDATE {t} SET v = v + 1 WHERE id IN (SELECT id FROM {t} WHERE id BETWEEN $4 AND $4 + 10 ORDER BY id FOR UPDATE);
