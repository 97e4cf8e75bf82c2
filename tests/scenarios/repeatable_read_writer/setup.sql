-- REPEATABLE READ and SERIALIZABLE writers next to READ COMMITTED ones; their serialization
-- failures are retried and counted.
CREATE TABLE acct (id int PRIMARY KEY, balance bigint NOT NULL, version int NOT NULL DEFAULT 0);
INSERT INTO acct SELECT i, 1000, 0 FROM generate_series(1, 300) i;
