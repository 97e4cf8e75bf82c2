-- Used by catalog::inspect: the table itself. $1: the table's oid.
SELECT n.nspname,
       c.relname,
       c.relkind::text,
       c.relpersistence::text,
       c.relispartition,
       EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i
                WHERE i.inhrelid = c.oid OR i.inhparent = c.oid) AS has_inheritance,
       pg_catalog.pg_get_userbyid(c.relowner) AS owner,
       c.relreplident::text,
       c.reloptions::text[] AS reloptions,
       t.reloptions::text[] AS toast_options,
       ts.spcname::text AS tablespace,
       c.relrowsecurity,
       c.relforcerowsecurity,
       pg_catalog.obj_description(c.oid, 'pg_class') AS comment,
       -- A partitioned table holds no rows itself: its partitions' figures, summed.
       CASE WHEN c.relkind = 'p'
            THEN (SELECT coalesce(sum(greatest(p.reltuples, 0)), 0)::float8
                    FROM pg_catalog.pg_partition_tree(c.oid) t
                    JOIN pg_catalog.pg_class p ON p.oid = t.relid WHERE t.isleaf)
            ELSE c.reltuples::float8 END AS reltuples,
       CASE WHEN c.relkind = 'p'
            THEN (SELECT coalesce(sum(pg_catalog.pg_relation_size(t.relid)), 0)::int8
                    FROM pg_catalog.pg_partition_tree(c.oid) t WHERE t.isleaf)
            ELSE pg_catalog.pg_relation_size(c.oid) END AS heap_bytes,
       CASE WHEN c.relkind = 'p'
            THEN (SELECT coalesce(sum(pg_catalog.pg_total_relation_size(t.relid)), 0)::int8
                    FROM pg_catalog.pg_partition_tree(c.oid) t)
            ELSE pg_catalog.pg_total_relation_size(c.oid) END AS total_bytes,
       c.relacl IS NOT NULL AS has_acl,
       CASE WHEN c.reloftype <> 0 THEN pg_catalog.format_type(c.reloftype, NULL) END AS of_type
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_catalog.pg_class t ON t.oid = c.reltoastrelid
  LEFT JOIN pg_catalog.pg_tablespace ts ON ts.oid = c.reltablespace
 WHERE c.oid = $1
