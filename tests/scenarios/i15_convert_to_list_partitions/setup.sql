-- Issue 15: a plain table converted to LIST partitions by region, the key widened to
-- (id, region), a DEFAULT partition for other regions. Writers move rows between regions
-- (and into the default one), delete and insert.
CREATE TABLE account (id int PRIMARY KEY, region text NOT NULL, balance numeric(12,2) NOT NULL DEFAULT 0, note text);
CREATE INDEX account_region_balance_idx ON account (region, balance);
INSERT INTO account SELECT i, (ARRAY['eu','us','apac'])[1 + i % 3], i * 1.5, 'n' || i FROM generate_series(1, 3000) i;
