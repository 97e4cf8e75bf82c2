-- Transactions that write the table and then read a view over it (the table's lock first, then
-- the view's), and inserts that draw a serial column from its sequence (the table's lock, then
-- the sequence's). The swap's first message takes the views' and the sequence's locks too; in
-- the order a read of a view takes them (view first), every attempt met one of these
-- transactions and waited out its timeout (found by a fresh tester: 10 attempts of 10).
CREATE TABLE account (id int PRIMARY KEY, n serial, balance int NOT NULL, note text);
INSERT INTO account (id, balance, note) SELECT i, 1000, 'a' || i FROM generate_series(1, 800) i;
CREATE VIEW account_v AS SELECT id, balance FROM account;
CREATE VIEW account_vv AS SELECT id FROM account_v WHERE balance > 1000;
