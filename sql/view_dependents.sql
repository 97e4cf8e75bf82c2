-- Used by dependents::refuse_view_blockers: objects other than the views over the table
-- themselves that depend on one of those views or on its row type (or the row type's array
-- type) with a normal dependency (pg_depend.deptype 'n': what DROP VIEW without CASCADE refuses
-- to drop): a function taking or returning the view's row type, a function whose SQL-standard
-- body (BEGIN ATOMIC) reads the view, a policy on another table that reads it, a column of
-- another table of the view's row type. The swap cannot drop and create the views again while
-- they exist. Automatic dependencies (a view's triggers, rules, column defaults, a materialized
-- view's indexes) go with the view, and the swap creates them again.
-- $1: the views' oids (oid[]). Returns a description of each object and the view it uses.
SELECT DISTINCT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) AS what,
       pg_catalog.format('%I.%I', n.nspname, c.relname) AS view
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_type t ON t.oid = c.reltype
  JOIN pg_catalog.pg_depend d
    ON d.deptype = 'n'
   AND ((d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = c.oid)
     OR (d.refclassid = 'pg_catalog.pg_type'::regclass AND d.refobjid IN (t.oid, t.typarray)))
 WHERE c.oid = ANY ($1)
   AND NOT (d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = ANY ($1))
   AND NOT (d.classid = 'pg_catalog.pg_rewrite'::regclass
            AND EXISTS (SELECT FROM pg_catalog.pg_rewrite r
                         WHERE r.oid = d.objid AND r.ev_class = ANY ($1)))
 ORDER BY 1, 2
