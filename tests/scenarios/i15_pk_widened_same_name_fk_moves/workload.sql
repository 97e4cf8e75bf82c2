-- tx weight=3
UPDATE {t} SET tenant_id = ($10 % 5) WHERE id = $1;
-- tx
DELETE FROM {t} WHERE id = $2;
-- tx
INSERT INTO {t} VALUES ($9, $10 % 5, 'new');
INSERT INTO invoice VALUES ($9, $9, 1);
