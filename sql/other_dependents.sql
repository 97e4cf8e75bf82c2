-- Used by preflight: objects other than views, indexes, constraints, sequences, triggers,
-- policies, defaults and types that depend on the table, which a swap would leave pointing at
-- the old table (functions with SQL-standard bodies, publications handled elsewhere...).
-- $1: the table's oid. Returns a description of each.
SELECT DISTINCT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) AS what
  FROM pg_catalog.pg_depend d
 WHERE d.refclassid = 'pg_catalog.pg_class'::regclass
   AND d.refobjid = $1
   AND d.deptype = 'n'
   AND d.classid NOT IN ('pg_catalog.pg_rewrite'::regclass, 'pg_catalog.pg_class'::regclass,
                         'pg_catalog.pg_constraint'::regclass, 'pg_catalog.pg_trigger'::regclass,
                         'pg_catalog.pg_policy'::regclass, 'pg_catalog.pg_attrdef'::regclass,
                         'pg_catalog.pg_type'::regclass, 'pg_catalog.pg_publication_rel'::regclass,
                         'pg_catalog.pg_statistic_ext'::regclass)
