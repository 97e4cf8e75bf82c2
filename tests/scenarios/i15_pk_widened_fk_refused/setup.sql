-- Issue 15: an incoming foreign key references (id); the ALTER widens the key and keeps no
-- unique key on id, so the foreign key could not be re-pointed: refused before anything is made.
CREATE TABLE account (id int PRIMARY KEY, tenant_id int NOT NULL);
CREATE TABLE invoice (id int PRIMARY KEY, account_id int REFERENCES account);
INSERT INTO account SELECT i, i % 5 FROM generate_series(1, 500) i;
INSERT INTO invoice SELECT i, i FROM generate_series(1, 500) i;
