-- bit(n) and bit varying: bit(8) -> bit(12) (padded on the right), varbit -> varbit(64).
CREATE TABLE v (id int PRIMARY KEY, b bit(8), vb varbit, w int);
INSERT INTO v SELECT i, (i % 256)::bit(8), (i::bit(32) || B'101')::varbit, i FROM generate_series(1, 600) i;
INSERT INTO v VALUES (0, NULL, B'', 0);
