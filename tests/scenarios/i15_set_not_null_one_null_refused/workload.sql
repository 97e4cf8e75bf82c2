-- tx
UPDATE {t} SET score = score + 1 WHERE id = $1;
-- tx
INSERT INTO {t} VALUES ($9, 'n' || $9 || '@example.org', $10 % 100);
