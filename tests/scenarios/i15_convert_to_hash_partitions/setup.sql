-- Issue 15: a plain table converted to HASH partitions on its key (the primary key already
-- holds the partition key: no --alter), under updates, deletes and inserts.
CREATE TABLE session (id bigint PRIMARY KEY, user_id int NOT NULL, seen timestamptz NOT NULL, data text);
CREATE INDEX session_user_idx ON session (user_id);
INSERT INTO session SELECT i, i % 97, timestamptz '2026-01-01' + i * interval '1 minute', md5(i::text) FROM generate_series(1, 3000) i;
