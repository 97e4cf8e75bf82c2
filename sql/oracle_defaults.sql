-- Used by oracle::check_sample: for every live column of the shadow, whether PostgreSQL numbers
-- it from a sequence as rows are written (an identity column) and whether its default calls a
-- volatile function (random(), nextval(), clock_timestamp(), a user function left VOLATILE).
-- Such a column gets a different value for every row written, so neither the sample's ALTER
-- nor the copy can give it a value to compare. $1: the shadow's oid.
-- The default's stored expression tree (pg_attrdef.adbin) names every function it calls as
-- `:funcid N` (function calls) or `:opfuncid N` (operators); pg_proc says which are volatile.
-- This is what contain_volatile_functions() looks at, apart from type I/O functions (never
-- volatile in core).
SELECT a.attname::text,
       a.attidentity <> '' AS identity,
       COALESCE((SELECT bool_or(p.provolatile = 'v')
                   FROM pg_catalog.regexp_matches(d.adbin::text, ':(?:funcid|opfuncid) ([0-9]+)', 'g') AS m(x)
                   JOIN pg_catalog.pg_proc p ON p.oid = m.x[1]::oid), false) AS volatile_default
  FROM pg_catalog.pg_attribute a
  LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum
