-- Used by catalog::dependent_views: views and materialized views that depend on the table,
-- directly or through other views, in an order in which they can be created again (a view's
-- depth is the longest path from the table, so it comes after everything it reads).
-- $1: the table's oid.
WITH RECURSIVE deps(oid, depth) AS (
    SELECT r.ev_class, 1
      FROM pg_catalog.pg_depend d
      JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
     WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass
       AND d.refclassid = 'pg_catalog.pg_class'::regclass
       AND d.refobjid = $1
       AND r.ev_class <> $1
    UNION
    SELECT r.ev_class, deps.depth + 1
      FROM deps
      JOIN pg_catalog.pg_depend d
        ON d.refobjid = deps.oid
       AND d.refclassid = 'pg_catalog.pg_class'::regclass
       AND d.classid = 'pg_catalog.pg_rewrite'::regclass
      JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
     WHERE r.ev_class <> deps.oid AND deps.depth < 100
)
SELECT c.oid,
       n.nspname::text,
       c.relname::text,
       c.relkind::text,
       max(deps.depth)::int4 AS depth,
       pg_catalog.pg_get_viewdef(c.oid) AS def,
       c.reloptions::text[] AS reloptions,
       pg_catalog.pg_get_userbyid(c.relowner)::text AS owner,
       pg_catalog.obj_description(c.oid, 'pg_class') AS comment
  FROM deps
  JOIN pg_catalog.pg_class c ON c.oid = deps.oid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 GROUP BY c.oid, n.nspname, c.relname, c.relkind
 ORDER BY max(deps.depth), c.oid
