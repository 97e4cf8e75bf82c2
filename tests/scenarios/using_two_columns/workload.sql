-- price and qty are not written after the start (a write after the swap does not recompute
-- total); rows are touched so replay has to apply the USING.
-- tx weight=2
UPDATE {t} SET note = 'u' || $10 WHERE id = $1;
-- tx
DELETE FROM {t} WHERE id = $2;
