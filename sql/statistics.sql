-- Used by catalog::statistics: extended statistics objects on a table. $1: the table's oid.
-- `def` is CREATE STATISTICS text naming the table; it is read before the swap and executed
-- after the renames, so it then means the new table.
SELECT s.oid,
       n.nspname::text,
       s.stxname::text,
       pg_catalog.pg_get_statisticsobjdef(s.oid) AS def,
       s.stxstattarget::int4,
       pg_catalog.pg_get_userbyid(s.stxowner)::text AS owner,
       pg_catalog.obj_description(s.oid, 'pg_statistic_ext') AS comment
  FROM pg_catalog.pg_statistic_ext s
  JOIN pg_catalog.pg_namespace n ON n.oid = s.stxnamespace
 WHERE s.stxrelid = $1
 ORDER BY s.stxname
