-- Used by preflight: objects that use the table's row type (or its array type): a column of
-- another table, a function argument or result... They would keep the old table's type after the
-- swap, so they are refused. $1: the table's oid.
SELECT DISTINCT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) AS what
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_type t ON t.oid = c.reltype
  JOIN pg_catalog.pg_depend d
    ON d.refclassid = 'pg_catalog.pg_type'::regclass
   AND d.refobjid IN (t.oid, t.typarray)
   AND d.deptype = 'n'
 WHERE c.oid = $1
   AND NOT (d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = $1)
