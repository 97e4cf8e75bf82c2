-- tx
UPDATE {t} SET p = ROW('u' || $10, ROW('st', $10)::addr, NULL)::person WHERE id = $1;
-- tx
UPDATE {t} SET hist = hist || ROW('h', $10)::addr WHERE id = $2;
-- tx
INSERT INTO {t} VALUES ($9, ROW('new', NULL, '{}'), NULL, 1);
