-- A USING that reads two columns: total (int, stale) becomes price * qty.
CREATE TABLE line (id int PRIMARY KEY, price numeric(10,2) NOT NULL, qty int NOT NULL, total int, note text);
INSERT INTO line SELECT i, i / 7.0, i % 13, 0, 'n' FROM generate_series(1, 600) i;
