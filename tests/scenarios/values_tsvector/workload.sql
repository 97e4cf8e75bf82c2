-- tx
UPDATE {t} SET tv = to_tsvector('simple', 'updated ' || $10), q = 'x | y' WHERE id = $1;
-- tx
UPDATE {t} SET body = body || $10 WHERE id = $2;
-- tx
INSERT INTO {t} VALUES ($9, 'new:1', 'new', 'n', 0);
