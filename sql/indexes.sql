-- Used by catalog::indexes: every index of a table, with the constraint it backs (if any).
-- $1: the table's oid. `prefix` is the exact text pg_get_indexdef starts with up to and including
-- " USING ", so the rest of the definition can be re-targeted at another table without parsing.
-- attstattarget is NULL for the default since PostgreSQL 17 (-1 before): `>= 0` skips both.
-- `temporal`: conperiod exists from PostgreSQL 18 on; catalog::for_version reads `false` before.
SELECT i.indexrelid AS oid,
       ic.relname::text AS name,
       pg_catalog.pg_get_indexdef(i.indexrelid) AS def,
       'CREATE ' || CASE WHEN i.indisunique THEN 'UNIQUE ' ELSE '' END || 'INDEX '
         || pg_catalog.quote_ident(ic.relname) || ' ON '
         || CASE WHEN tc.relkind = 'p' THEN 'ONLY ' ELSE '' END
         || pg_catalog.quote_ident(tn.nspname) || '.' || pg_catalog.quote_ident(tc.relname)
         || ' USING ' AS prefix,
       i.indisunique,
       i.indisprimary,
       i.indisvalid AND i.indisready AS usable,
       i.indimmediate,
       i.indpred IS NOT NULL AS partial,
       i.indnkeyatts::int4 AS nkeys,
       ARRAY(SELECT a.attname::text
               FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
              WHERE k.ord <= i.indnkeyatts
              ORDER BY k.ord) AS key_columns,
       con.conname::text AS constraint_name,
       con.contype::text AS constraint_type,
       pg_catalog.pg_get_constraintdef(con.oid) AS constraint_def,
       ts.spcname::text AS tablespace,
       COALESCE(con.condeferrable, false) AS deferrable,
       COALESCE(con.condeferred, false) AS deferred,
       pg_catalog.obj_description(i.indexrelid, 'pg_class') AS comment,
       pg_catalog.obj_description(con.oid, 'pg_constraint') AS constraint_comment,
       i.indisclustered,
       ARRAY(SELECT a.attnum::text || ':' || a.attstattarget::text
               FROM pg_catalog.pg_attribute a
              WHERE a.attrelid = i.indexrelid AND a.attstattarget >= 0
              ORDER BY a.attnum) AS column_stats,
       COALESCE(con.conperiod, false) AS temporal
  FROM pg_catalog.pg_index i
  JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_catalog.pg_class tc ON tc.oid = i.indrelid
  JOIN pg_catalog.pg_namespace tn ON tn.oid = tc.relnamespace
  LEFT JOIN pg_catalog.pg_constraint con
         ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u', 'x')
  LEFT JOIN pg_catalog.pg_tablespace ts ON ts.oid = ic.reltablespace
 WHERE i.indrelid = $1
 ORDER BY i.indisprimary DESC, ic.relname
