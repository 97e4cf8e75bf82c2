-- Used by catalog::columns: live columns of a table in attnum order. $1: the table's oid.
-- type_name carries the typmod (character varying(10)); base_type names the type by its catalog
-- name without a modifier (pg_catalog.bpchar, pg_catalog."bit"), so a cast to it leaves the
-- typmod to the binary receive function of the target column (assignment semantics). Not
-- format_type(oid, NULL): that prints "character" and "bit", which SQL reads as char(1) and
-- bit(1), and a cast to them truncates (issue 21).
SELECT a.attnum::int4,
       a.attname::text,
       pg_catalog.format_type(a.atttypid, a.atttypmod) AS type_name,
       pg_catalog.quote_ident(tn.nspname) || '.' || pg_catalog.quote_ident(t.typname) AS base_type,
       a.atttypid,
       a.attnotnull,
       a.attgenerated::text,
       a.attidentity::text,
       pg_catalog.pg_get_expr(d.adbin, d.adrelid) AS default_expr,
       pg_catalog.col_description(a.attrelid, a.attnum) AS comment,
       COALESCE(a.attstattarget::int4, -1) AS stat_target,
       a.attoptions::text[] AS options
  FROM pg_catalog.pg_attribute a
  JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
  JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace
  LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum
