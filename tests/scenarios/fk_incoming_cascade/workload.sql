-- tx
DELETE FROM {t} WHERE id = $1;
-- tx
INSERT INTO {t} VALUES ($9, 'new');
INSERT INTO book VALUES ($9, $9, 'new book');
-- tx weight=2
UPDATE {t} SET name = 'x' || $10 WHERE id = $2;
