-- Issue 15: a table without a primary key gets one from its unique index on a NOT NULL column
-- (ADD PRIMARY KEY USING INDEX names the source's index).
CREATE TABLE device (serial text NOT NULL, model text, seen int NOT NULL DEFAULT 0);
CREATE UNIQUE INDEX device_serial_idx ON device (serial);
INSERT INTO device SELECT 's' || i, 'm' || (i % 9), 0 FROM generate_series(1, 2500) i;
