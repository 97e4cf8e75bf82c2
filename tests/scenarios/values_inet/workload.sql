-- tx
UPDATE {t} SET a = '1.2.3.4/16' WHERE id = $1;
-- tx
UPDATE {t} SET w = $10 WHERE id = $2;
-- tx
INSERT INTO {t} VALUES ($9, '::1', '10.0.0.0/8', '00:00:00:00:00:00', '10.1.0.0/16', 0);
