-- tx
UPDATE {t} SET q = $10, c = 'U' || $10 WHERE id = $1;
-- tx
UPDATE {t} SET qs = ARRAY[$10, 1] WHERE id = $2;
-- tx
INSERT INTO {t} VALUES ($9, 0, 'New', '{5}', 0);
