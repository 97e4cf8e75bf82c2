-- A DEFERRABLE primary key shifted by whole ranges (only a deferred check allows it).
CREATE TABLE seq_item (id int PRIMARY KEY DEFERRABLE, v text);
INSERT INTO seq_item SELECT i, 'v' || i FROM generate_series(1, 500) i;
