-- Updates that leave the legacy values alone (an updated row is checked again).
-- tx weight=3
UPDATE {t} SET note = 'u' || $10 WHERE id = $1 + 50;
-- tx
UPDATE {t} SET qty = $10 WHERE id = $1 + 50;
-- tx
INSERT INTO {t} VALUES ($9, $10, 1, 1, 'new');
