-- issue 13 input 2: enum -> enum through text.
CREATE TYPE order_state AS ENUM ('new', 'paid', 'shipped');
CREATE TYPE order_state_v2 AS ENUM ('new', 'paid', 'shipped', 'cancelled');
CREATE TABLE orders (id int PRIMARY KEY, state order_state NOT NULL, total int);
INSERT INTO orders SELECT i, (ARRAY['new','paid','shipped']::order_state[])[1 + i % 3], i FROM generate_series(1, 600) i;
