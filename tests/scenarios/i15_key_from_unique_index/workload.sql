-- tx weight=3
UPDATE {t} SET seen = seen + 1 WHERE serial = 's' || $1;
-- tx
DELETE FROM {t} WHERE serial = 's' || $2;
-- tx
INSERT INTO {t} VALUES ('s' || $9, 'new', 0);
