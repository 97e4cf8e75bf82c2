-- tx weight=3
UPDATE {t} SET balance = balance + 1 WHERE id = $1;
SELECT balance FROM account_v WHERE id = $1;
-- tx weight=2
INSERT INTO {t} (id, balance, note) VALUES ($9, 1000, 'new');
SELECT count(*) FROM account_vv WHERE id < $2;
-- tx
SELECT count(*) FROM account_vv WHERE id = $3;
