-- Issue 15: the key changed under a new constraint name with its type, and the ALTER names the
-- new key again (CLUSTER ON), as PostgreSQL allows within one ALTER TABLE.
CREATE TABLE reading (id int PRIMARY KEY, sensor int NOT NULL, value float8);
CREATE INDEX reading_sensor_idx ON reading (sensor);
INSERT INTO reading SELECT i, i % 50, i / 3.0 FROM generate_series(1, 3000) i;
