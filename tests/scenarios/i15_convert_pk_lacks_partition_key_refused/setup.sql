-- Issue 15: a conversion whose primary key (id) does not include the partition key
-- (created_on): PostgreSQL cannot build it on a partitioned table, and says so in the trial;
-- refused before anything is created, with PostgreSQL's reason, under writes.
CREATE TABLE event (id int PRIMARY KEY, created_on date NOT NULL, kind text NOT NULL);
INSERT INTO event SELECT i, date '2026-01-01' + (i % 90), 'k' || (i % 4) FROM generate_series(1, 2000) i;
