-- Used by catalog::partition_tree: every partition below a partitioned table, parents before
-- their partitions. $1: the partitioned table's oid.
SELECT c.oid,
       n.nspname::text,
       c.relname::text,
       i.inhparent,
       pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS bound,
       CASE WHEN c.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(c.oid) END AS partition_key,
       c.relkind::text,
       coalesce(c.reloptions, '{}')::text[] AS reloptions,
       coalesce(tc.reloptions, '{}')::text[] AS toast_options,
       pg_catalog.pg_get_userbyid(c.relowner)::text AS owner,
       ts.spcname::text AS tablespace,
       pg_catalog.obj_description(c.oid, 'pg_class') AS comment,
       t.level,
       c.relpersistence::text
  FROM pg_catalog.pg_partition_tree($1::oid::regclass) t
  JOIN pg_catalog.pg_class c ON c.oid = t.relid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_inherits i ON i.inhrelid = c.oid
  LEFT JOIN pg_catalog.pg_class tc ON tc.oid = c.reltoastrelid
  LEFT JOIN pg_catalog.pg_tablespace ts ON ts.oid = c.reltablespace
 WHERE t.level > 0
 ORDER BY t.level, c.relname
