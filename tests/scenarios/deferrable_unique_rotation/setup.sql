-- A composite UNIQUE DEFERRABLE INITIALLY DEFERRED key rotated within groups, a row at a time
-- (duplicates until commit).
CREATE TABLE seat (id int PRIMARY KEY, grp int NOT NULL, place int NOT NULL, UNIQUE (grp, place) DEFERRABLE INITIALLY DEFERRED);
INSERT INTO seat SELECT i, i / 10, i % 10 FROM generate_series(0, 799) i;
