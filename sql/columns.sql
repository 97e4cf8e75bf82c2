-- Used by catalog::columns: live columns of a table in attnum order. $1: the table's oid.
-- type_name carries the typmod (character varying(10)); base_type names the type by its catalog
-- name without a modifier (pg_catalog.bpchar, pg_catalog."bit"), so a cast to it leaves the
-- typmod to the binary receive function of the target column (assignment semantics). Not
-- format_type(oid, NULL): that prints "character" and "bit", which SQL reads as char(1) and
-- bit(1), and a cast to them truncates (issue 21). For a domain (or an array of one) it names the
-- domain's base type (or an array of it): an explicit cast to a domain over varchar(5) cuts a
-- longer value to 5 characters, where ALTER's assignment coercion fails; cast to the base type,
-- the value reaches the column whole and the domain's receive function applies the length and
-- the domain's constraints, as ALTER would.
SELECT a.attnum::int4,
       a.attname::text,
       pg_catalog.format_type(a.atttypid, a.atttypmod) AS type_name,
       pg_catalog.quote_ident(bn.nspname) || '.' || pg_catalog.quote_ident(b.typname) AS base_type,
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
  -- The type under any domains; for an array of a domain, the array of the element's base
  -- type. Any other type is itself (LEFT JOINs: a column is never lost to an odd catalog row).
  LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem AND t.typlen = -1 AND e.typtype = 'd'
  LEFT JOIN LATERAL (
    WITH RECURSIVE under(oid, depth) AS (
        SELECT COALESCE(e.oid, t.oid), 0
      UNION ALL
        SELECT d.typbasetype, u.depth + 1
          FROM under u JOIN pg_catalog.pg_type d ON d.oid = u.oid
         WHERE d.typtype = 'd' AND u.depth < 32
    )
    SELECT u.oid FROM under u ORDER BY u.depth DESC LIMIT 1
  ) base_of ON t.typtype = 'd' OR e.oid IS NOT NULL
  LEFT JOIN pg_catalog.pg_type bt ON bt.oid = base_of.oid
  JOIN pg_catalog.pg_type b ON b.oid = COALESCE(
         CASE WHEN e.oid IS NOT NULL THEN NULLIF(bt.typarray, 0) ELSE bt.oid END, t.oid)
  JOIN pg_catalog.pg_namespace bn ON bn.oid = b.typnamespace
  LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum
