-- tx
UPDATE {t} SET a = ARRAY[$10, $10 + 1], t = ARRAY['x', 'y$10'] WHERE id = $1;
-- tx
UPDATE {t} SET a = '[5:6]={7,8}' WHERE id = $2;
-- tx
INSERT INTO {t} VALUES ($9, '{1,NULL}', '{}', 0);
-- tx
DELETE FROM {t} WHERE id = $3;
