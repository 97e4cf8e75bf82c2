-- Domains over int (with a CHECK), over text (NOT NULL), over an array; changed to the
-- base type and to another domain.
CREATE DOMAIN qty AS int CHECK (VALUE >= 0);
CREATE DOMAIN code AS text NOT NULL CHECK (VALUE ~ '^[A-Z]');
CREATE DOMAIN code2 AS varchar(20) CHECK (VALUE ~ '^[A-Z]');
CREATE DOMAIN qtys AS int[] CHECK (array_length(VALUE, 1) > 0);
CREATE TABLE v (id int PRIMARY KEY, q qty, c code, qs qtys, w int);
INSERT INTO v SELECT i, i, 'C' || i, ARRAY[i], i FROM generate_series(1, 600) i;
