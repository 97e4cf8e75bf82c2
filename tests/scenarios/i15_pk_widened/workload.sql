-- tx weight=3
UPDATE {t} SET tenant_id = ($10 % 7) WHERE id = $1;
-- tx weight=2
UPDATE {t} SET balance = balance + 1 WHERE id IN ($2, $3);
-- tx
DELETE FROM {t} WHERE id = $4;
-- tx
INSERT INTO {t} VALUES ($9, $10 % 7, 0, 'new');
-- tx
DELETE FROM {t} WHERE id = $5;
INSERT INTO {t} VALUES ($5, $10 % 7, 5, 'again');
