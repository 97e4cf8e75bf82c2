-- tx weight=3
DELETE FROM {t} WHERE tok = 't' || $1;
INSERT INTO {t} (id, tok) VALUES ($9, 't' || $1) ON CONFLICT (tok) DO NOTHING;
-- tx
UPDATE {t} SET tok = 'x' || $9 WHERE tok = 't' || $2;
INSERT INTO {t} (id, tok) VALUES ($9, 't' || $2) ON CONFLICT (tok) DO NOTHING;
