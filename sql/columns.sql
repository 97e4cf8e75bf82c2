-- Used by catalog::columns: live columns of a table in attnum order. $1: the table's oid.
-- type_name carries the typmod (character varying(10)); base_type drops it, so a cast to it
-- leaves the typmod to the binary receive function of the target column (assignment semantics).
SELECT a.attnum::int4,
       a.attname::text,
       pg_catalog.format_type(a.atttypid, a.atttypmod) AS type_name,
       pg_catalog.format_type(a.atttypid, NULL) AS base_type,
       a.atttypid,
       a.attnotnull,
       a.attgenerated::text,
       a.attidentity::text,
       pg_catalog.pg_get_expr(d.adbin, d.adrelid) AS default_expr,
       pg_catalog.col_description(a.attrelid, a.attnum) AS comment,
       a.attstattarget::int4 AS stat_target,
       a.attoptions::text[] AS options
  FROM pg_catalog.pg_attribute a
  LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum
