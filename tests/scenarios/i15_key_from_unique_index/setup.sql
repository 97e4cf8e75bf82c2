-- Issue 15: a table without a primary key gets one from its unique index on a NOT NULL column
-- (ADD PRIMARY KEY USING INDEX names the source's index). PostgreSQL needs no copy for it
-- (row_identity.rs checks the in-place path); with --force-rewrite this checks the copy, where
-- the shadow must read the source's index name.
CREATE TABLE device (serial text NOT NULL, model text, seen int NOT NULL DEFAULT 0);
CREATE UNIQUE INDEX device_serial_idx ON device (serial);
INSERT INTO device SELECT 's' || i, 'm' || (i % 9), 0 FROM generate_series(1, 2500) i;
