-- The middle of a chain: region <- store <- sale. The store table is rewritten while stores
-- are closed (sales first, then the store), regions removed (stores first), new ones opened.
CREATE TABLE region (id int PRIMARY KEY);
CREATE TABLE store (id int PRIMARY KEY, region_id int NOT NULL REFERENCES region, name text);
CREATE TABLE sale (id int PRIMARY KEY, store_id int NOT NULL REFERENCES store, amount int);
INSERT INTO region SELECT generate_series(1, 50);
INSERT INTO store SELECT i, 1 + i % 50, 's' || i FROM generate_series(1, 600) i;
INSERT INTO sale SELECT i, 1 + i % 600, i FROM generate_series(1, 2000) i;
