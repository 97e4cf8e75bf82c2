-- Used by preflight: objects other than views, indexes, constraints, sequences, triggers,
-- the table's own policies, defaults and types that depend on the table, which a swap would
-- leave pointing at the old table (functions with SQL-standard bodies, another table's policy
-- that reads this one — its rows would be checked against the old table from then on;
-- publications are handled elsewhere...); and
-- any object that uses one of the table's identity sequences (another column's default
-- `nextval('t_id_seq')`, here or in another table, a view reading it): the swap gives the new
-- table its own identity sequence under that name, and such objects would keep drawing from the
-- old one, which the swap closes (`swap::sequences`).
-- $1: the table's oid. Returns a description of each.
SELECT DISTINCT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) AS what
  FROM pg_catalog.pg_depend d
 WHERE d.refclassid = 'pg_catalog.pg_class'::regclass
   AND d.refobjid = $1
   AND d.deptype = 'n'
   AND d.classid NOT IN ('pg_catalog.pg_rewrite'::regclass, 'pg_catalog.pg_class'::regclass,
                         'pg_catalog.pg_constraint'::regclass, 'pg_catalog.pg_trigger'::regclass,
                         'pg_catalog.pg_attrdef'::regclass,
                         'pg_catalog.pg_type'::regclass, 'pg_catalog.pg_publication_rel'::regclass,
                         'pg_catalog.pg_statistic_ext'::regclass)
   -- The table's own policies go with it; another table's policy that reads it stays behind.
   AND NOT (d.classid = 'pg_catalog.pg_policy'::regclass
            AND EXISTS (SELECT FROM pg_catalog.pg_policy p
                         WHERE p.oid = d.objid AND p.polrelid = $1))
UNION
SELECT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid)
       || ' (uses the identity sequence ' || pg_catalog.quote_ident(s.relname) || ')'
  FROM pg_catalog.pg_depend i
  JOIN pg_catalog.pg_class s ON s.oid = i.objid AND s.relkind = 'S'
  JOIN pg_catalog.pg_depend d ON d.refclassid = 'pg_catalog.pg_class'::regclass
                             AND d.refobjid = i.objid AND d.deptype = 'n'
 WHERE i.classid = 'pg_catalog.pg_class'::regclass
   AND i.refclassid = 'pg_catalog.pg_class'::regclass
   AND i.refobjid = $1
   AND i.deptype = 'i'
 ORDER BY 1
