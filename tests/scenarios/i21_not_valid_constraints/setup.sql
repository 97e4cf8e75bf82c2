-- issue 21 input 5: constraints added NOT VALID over legacy rows that violate them: a table
-- CHECK, a domain CHECK and a foreign key. PostgreSQL's rewrite keeps them NOT VALID.
CREATE DOMAIN positive_int AS int;
CREATE TABLE warehouse (id int PRIMARY KEY);
INSERT INTO warehouse SELECT generate_series(1, 10);
CREATE TABLE stock (id int PRIMARY KEY, qty int, lot positive_int, warehouse_id int, note text);
INSERT INTO stock SELECT i, CASE WHEN i <= 50 THEN -i ELSE i END, CASE WHEN i % 10 = 0 THEN -1 ELSE i END,
  CASE WHEN i % 7 = 0 THEN 99 ELSE 1 + i % 10 END, 'legacy' FROM generate_series(1, 600) i;
ALTER TABLE stock ADD CONSTRAINT stock_qty_nonnegative CHECK (qty >= 0) NOT VALID;
ALTER DOMAIN positive_int ADD CONSTRAINT positive CHECK (VALUE > 0) NOT VALID;
ALTER TABLE stock ADD CONSTRAINT stock_warehouse_fk FOREIGN KEY (warehouse_id) REFERENCES warehouse NOT VALID;
