-- tx
UPDATE {t} SET state = 'paid' WHERE id = $1;
-- tx
UPDATE {t} SET state = 'shipped', total = $10 WHERE id = $1;
-- tx
INSERT INTO {t} VALUES ($9, 'new', 1);
-- tx
DELETE FROM {t} WHERE id = $3;
