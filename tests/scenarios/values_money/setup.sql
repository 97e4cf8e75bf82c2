-- money (lc_monetary of the server), negative and large values -> numeric.
CREATE TABLE v (id int PRIMARY KEY, m money, w int);
INSERT INTO v SELECT i, (i * 1234.56 - 300000)::numeric::money, i FROM generate_series(1, 600) i;
INSERT INTO v VALUES (0, '92233720368547758.07', 0), (-1, '-92233720368547758.08', 0), (-2, NULL, 0);
