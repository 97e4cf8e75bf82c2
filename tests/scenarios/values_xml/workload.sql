-- tx
UPDATE {t} SET x = '<?xml version="1.0" encoding="UTF-8"?><u>$10</u>' WHERE id = $1;
-- tx
UPDATE {t} SET w = $10 WHERE id = $2;
-- tx
INSERT INTO {t} VALUES ($9, '<?xml version="1.0" encoding="UTF-8"?><new/>', '<?xml version="1.0"?><n/>', '{}', 0);
