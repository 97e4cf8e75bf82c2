-- Issue 15: the key widened under the same constraint name, the old key kept UNIQUE, so the
-- incoming foreign key moves to the new table (re-pointed at the unique key on id).
CREATE TABLE account (id int PRIMARY KEY, tenant_id int NOT NULL, name text);
CREATE TABLE invoice (id int PRIMARY KEY, account_id int REFERENCES account ON DELETE CASCADE, amount int);
INSERT INTO account SELECT i, i % 5, 'a' || i FROM generate_series(1, 2000) i;
INSERT INTO invoice SELECT i, 1 + i % 2000, i FROM generate_series(1, 4000) i;
