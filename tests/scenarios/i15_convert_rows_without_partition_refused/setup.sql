-- Issue 15: the partitions given cover January and February only, there is no DEFAULT
-- partition, and the table has March rows: the sample routes rows through the partitioned
-- shadow in the trial, and the run is refused before anything is created, naming the values
-- without a partition and how to add one. Under writes.
CREATE TABLE event (id int PRIMARY KEY, created_on date NOT NULL, kind text NOT NULL);
INSERT INTO event SELECT i, date '2026-01-01' + (i % 90), 'k' || (i % 4) FROM generate_series(1, 3000) i;
