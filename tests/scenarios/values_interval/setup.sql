-- interval: months, days and microseconds apart, negative parts; interval -> interval(0)
-- (PostgreSQL rounds the seconds) and interval day to second... kept.
CREATE TABLE v (id int PRIMARY KEY, iv interval, ivs interval, w int);
INSERT INTO v SELECT i, make_interval(0, i % 14, 0, -i, 0, i, i / 7.0), i * interval '1.5 seconds' - interval '1 mon', i FROM generate_series(1, 600) i;
INSERT INTO v VALUES (0, '-178000000 years', '00:00:00.000001', 0);
