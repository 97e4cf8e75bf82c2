-- tx weight=3 isolation=repeatable_read
SELECT 1 FROM {t} WHERE id IN ($1, $2);
UPDATE {t} SET balance = balance - 1, version = version + 1 WHERE id = least($1, $2);
UPDATE {t} SET balance = balance + 1, version = version + 1 WHERE id = greatest($1, $2) AND $2 <> $1;
-- tx isolation=serializable
UPDATE {t} SET version = version + 1 WHERE id = $3;
-- tx
UPDATE {t} SET balance = balance + 0, version = version + 1 WHERE id = $4;
-- tx isolation=repeatable_read
INSERT INTO {t} VALUES ($9, 0, 0);
