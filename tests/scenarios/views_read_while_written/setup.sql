-- Views over a hot table, read by the application inside its write transactions (PostgreSQL
-- locks a view before the table under it). The swap re-creates the views over the new table;
-- it takes their locks in its first statement, or each read of a view that arrives while it
-- holds the table's lock keeps the view it must replace, and the attempt waits out its timeout.
CREATE TABLE account (id int PRIMARY KEY, owner_id int NOT NULL, balance int NOT NULL, note text);
INSERT INTO account SELECT i, i % 97, 1000, 'a' || i FROM generate_series(1, 800) i;
CREATE VIEW account_v AS SELECT id, owner_id, balance FROM account;
CREATE VIEW rich_v AS SELECT id FROM account_v WHERE balance > 1000;
CREATE MATERIALIZED VIEW owner_totals AS SELECT owner_id, count(*) AS n FROM account GROUP BY owner_id;
