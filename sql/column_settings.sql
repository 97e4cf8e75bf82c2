-- Used by rewrite::carried::column_settings: the per-column settings of a relation that live
-- outside its definition, as the swap carries them (statistics target, storage, compression,
-- options, comment). $1: the relation's oid. attstattarget is NULL for the default since
-- PostgreSQL 17 (-1 before): both read as -1. `pg_attver=` options are the server's own (see
-- carried_fingerprint.sql) and left out.
SELECT a.attname::text,
       COALESCE(a.attstattarget::int4, -1),
       a.attstorage::text,
       a.attcompression::text,
       ARRAY(SELECT o FROM unnest(COALESCE(a.attoptions, '{}')) WITH ORDINALITY u(o, n)
              WHERE o NOT LIKE 'pg\_attver=%' ORDER BY n),
       pg_catalog.col_description(a.attrelid, a.attnum)
  FROM pg_catalog.pg_attribute a
 WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum
