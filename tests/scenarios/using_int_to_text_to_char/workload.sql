-- n is not written (after the swap a write is in the new form, before it in the old one).
-- tx weight=2
UPDATE {t} SET note = 'u' || $10 WHERE id = $1;
-- tx
INSERT INTO {t} VALUES ($9, NULL, 'new');
-- tx
DELETE FROM {t} WHERE id = $2;
