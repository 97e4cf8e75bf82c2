-- An exclusion constraint (no two bookings of a room overlap); bookings are cancelled and
-- rebooked under a new id for the same slot, and resized within their slot.
CREATE EXTENSION IF NOT EXISTS btree_gist;
CREATE TABLE booking (id int PRIMARY KEY, room int NOT NULL, during tsrange NOT NULL,
  EXCLUDE USING gist (room WITH =, during WITH &&));
INSERT INTO booking SELECT i, i % 20,
  tsrange('2026-01-01'::timestamp + (i / 20) * interval '1 hour', '2026-01-01'::timestamp + (i / 20 + 1) * interval '1 hour')
FROM generate_series(1, 600) i;
