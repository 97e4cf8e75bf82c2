-- tx weight=2
INSERT INTO {t} AS x (id, email, n) VALUES ($9, 'e' || $1, 1) ON CONFLICT (email) DO UPDATE SET id = excluded.id, n = x.n + 1;
-- tx weight=2
INSERT INTO {t} AS x (id, email, n) VALUES ($2, 'f' || $9, 1) ON CONFLICT (id) DO UPDATE SET email = excluded.email, n = x.n + 1;
-- tx
DELETE FROM {t} WHERE email = 'e' || $3;
