-- An integer written as text before the swap converts to itself.
-- tx
UPDATE {t} SET qty = $10 WHERE id = $1;
-- tx weight=2
UPDATE {t} SET note = 'u' || $10 WHERE id = $2;
-- tx
INSERT INTO {t} VALUES ($9, $10, 'new');
-- tx
DELETE FROM {t} WHERE id = $3;
