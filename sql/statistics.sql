-- Used by catalog::statistics: extended statistics objects on a table. $1: the table's oid.
-- `def` is CREATE STATISTICS text naming the table; it is read before the swap and executed
-- after the renames, so it then means the new table. stxstattarget is a nullable int2 since
-- PostgreSQL 17 (NULL: the default), an int4 -1 before; both read as -1 for the default.
-- `columns` (the columns and expressions, as CREATE STATISTICS takes them) and `kinds`
-- (stxkind: d, f, m, e) let the shadow get the same object before the ALTER (shadow.rs).
SELECT s.oid,
       n.nspname::text,
       s.stxname::text,
       pg_catalog.pg_get_statisticsobjdef(s.oid) AS def,
       COALESCE(s.stxstattarget::int4, -1) AS stat_target,
       pg_catalog.pg_get_userbyid(s.stxowner)::text AS owner,
       pg_catalog.obj_description(s.oid, 'pg_statistic_ext') AS comment,
       pg_catalog.pg_get_statisticsobjdef_columns(s.oid) AS columns,
       ARRAY(SELECT k::text FROM unnest(s.stxkind) AS k) AS kinds
  FROM pg_catalog.pg_statistic_ext s
  JOIN pg_catalog.pg_namespace n ON n.oid = s.stxnamespace
 WHERE s.stxrelid = $1
 ORDER BY s.stxname
