-- tx
UPDATE {t} SET "Unit Price" = $10 / 100.0 WHERE "ID" = $1;
-- tx
DELETE FROM {t} WHERE "sku.code" = 'S-' || $2;
INSERT INTO {t} ("ID", "Unit Price", "sku.code", "größe") VALUES ($9, 1, 'S-' || $2, 0) ON CONFLICT ("sku.code") DO NOTHING;
