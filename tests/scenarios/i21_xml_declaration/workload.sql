-- tx
UPDATE {t} SET doc = '<?xml version="1.0" encoding="UTF-8"?><r>$10</r>' WHERE id = $1;
-- tx
UPDATE {t} SET n = $10 WHERE id = $1;
-- tx
INSERT INTO {t} VALUES ($9, '<?xml version="1.0"?><new/>', 0);
