-- Used by dependents::refuse_dependents and dependents::probe_views: the objects that depend
-- on named columns of the table with a normal dependency (pg_depend.deptype 'n': the ones
-- ALTER TABLE ... DROP COLUMN refuses to drop without CASCADE, and ALTER COLUMN ... TYPE looks
-- at). Automatic dependencies (the table's own indexes, constraints, statistics, owned
-- sequences) are left out: PostgreSQL drops or rebuilds them itself, and so does the shadow.
-- Generated columns of the table (pg_attrdef) are left out too: the shadow has them, so the
-- ALTER on the shadow refuses exactly as PostgreSQL does.
-- $1: the table's oid; $2: column names (text[]).
-- Returns: column, catalog of the dependent object, the relkind of the view when the object
-- is a view's or materialized view's rewrite rule (else NULL), the view's oid (else NULL), and
-- a description of the object.
SELECT DISTINCT
       a.attnum,
       a.attname::text AS column_name,
       d.classid::regclass::text AS catalog,
       v.relkind::text AS view_kind,
       v.oid AS view_oid,
       CASE
           WHEN v.oid IS NOT NULL THEN
               format('%s %I.%I',
                      CASE v.relkind WHEN 'm' THEN 'materialized view' ELSE 'view' END,
                      vn.nspname, v.relname)
           ELSE pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid)
       END AS object
  FROM pg_catalog.pg_depend d
  JOIN pg_catalog.pg_attribute a
    ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid AND NOT a.attisdropped
  LEFT JOIN pg_catalog.pg_rewrite r
    ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND r.oid = d.objid
  LEFT JOIN pg_catalog.pg_class v
    ON v.oid = r.ev_class AND v.oid <> $1 AND v.relkind IN ('v', 'm')
  LEFT JOIN pg_catalog.pg_namespace vn ON vn.oid = v.relnamespace
 WHERE d.refclassid = 'pg_catalog.pg_class'::regclass
   AND d.refobjid = $1
   AND d.refobjsubid > 0
   AND d.deptype = 'n'
   AND d.classid <> 'pg_catalog.pg_attrdef'::regclass
   -- An object that also depends automatically on the column (a CHECK constraint of the table
   -- has both: automatic on its columns, normal on its expression's) is dropped with it by
   -- DROP COLUMN without CASCADE, as PostgreSQL's findDependentObjects decides.
   AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend x
                    WHERE x.classid = d.classid AND x.objid = d.objid
                      AND x.refclassid = d.refclassid AND x.refobjid = d.refobjid
                      AND x.refobjsubid = d.refobjsubid AND x.deptype IN ('a', 'i'))
   AND a.attname::text = ANY ($2::text[])
 ORDER BY a.attnum, object
