-- Writers do not write amount itself (a value written after the swap is in the new unit, one
-- written to the ledger is converted by the ALTER); they touch the rows around it, so replay
-- has to apply the USING to rows it re-reads.
-- tx weight=3
UPDATE {t} SET note = 'u' || $10 WHERE id = $1;
-- tx
INSERT INTO {t} (id, amount, note) VALUES ($9, NULL, 'new');
-- tx
DELETE FROM {t} WHERE id = $2;
