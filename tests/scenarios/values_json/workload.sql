-- tx
UPDATE {t} SET j = '{"n":  $10 , "n": 1}' WHERE id = $1;
-- tx
UPDATE {t} SET jb = jb || '{"u": $10}' WHERE id = $2;
-- tx
INSERT INTO {t} VALUES ($9, 'null', '[]', 0);
