-- tx weight=3
SELECT balance FROM account_v WHERE id = $1;
UPDATE {t} SET balance = balance + 1 WHERE id = $1;
-- tx weight=2
UPDATE {t} SET balance = balance - 1, note = 'n' || $10 WHERE id = $2;
SELECT count(*) FROM rich_v WHERE id < $2;
-- tx
SELECT n FROM owner_totals WHERE owner_id = $3 % 97;
INSERT INTO {t} VALUES ($9, $9 % 97, 1000, 'new');
