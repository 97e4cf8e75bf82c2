-- tx
UPDATE {t} SET iv = '1 mon -2 days 03:04:05.678', ivs = '$10 seconds' WHERE id = $1;
-- tx
INSERT INTO {t} VALUES ($9, '0', '1 day', 0);
-- tx
DELETE FROM {t} WHERE id = $2;
