-- Quoted names everywhere: a schema and table with capitals, spaces, quotes and non-ASCII
-- letters, columns likewise, a unique key on such a column.
CREATE SCHEMA "Äpp ""Data""";
CREATE TABLE "Äpp ""Data"""."Order Lines; ""x""" ("ID" int PRIMARY KEY, "Unit Price" numeric(10,2), "sku.code" text UNIQUE, "größe" int);
INSERT INTO "Äpp ""Data"""."Order Lines; ""x""" SELECT i, i / 4.0, 'S-' || i, i FROM generate_series(1, 600) i;
