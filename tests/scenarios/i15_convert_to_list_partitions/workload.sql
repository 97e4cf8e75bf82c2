-- tx weight=3
UPDATE {t} SET region = (ARRAY['eu','us','apac','latam'])[1 + $10 % 4] WHERE id = $1;
-- tx weight=2
UPDATE {t} SET balance = balance + 1 WHERE id IN ($2, $3);
-- tx
DELETE FROM {t} WHERE id = $4;
-- tx
INSERT INTO {t} VALUES ($9, (ARRAY['eu','us','apac','latam'])[1 + $10 % 4], $10 % 1000, NULL);
