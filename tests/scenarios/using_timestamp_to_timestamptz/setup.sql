-- timestamp -> timestamptz USING ... AT TIME ZONE 'UTC', including infinity and BC.
CREATE TABLE ev (id int PRIMARY KEY, at timestamp, note text);
INSERT INTO ev SELECT i, '2020-03-29 00:30'::timestamp + i * interval '17 minutes', 'n' FROM generate_series(1, 600) i;
INSERT INTO ev VALUES (0, 'infinity', 'inf'), (-1, '0044-03-15 12:00 BC', 'bc'), (-2, NULL, 'null');
