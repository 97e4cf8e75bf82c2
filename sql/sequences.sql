-- Used by catalog::sequences: sequences owned by a table's columns, serial ('a') or identity
-- ('i'), with their bounds (a revert restores the bounds the swap narrowed) and their column's
-- attnum. $1: the table's oid. The one definition of a table's sequences: the shadow's identity
-- sequences are read with it too (shadow::identity).
SELECT s.oid,
       n.nspname::text,
       s.relname::text,
       a.attname::text AS column_name,
       d.deptype::text,
       q.seqmin,
       q.seqmax,
       q.seqcycle,
       a.attnum
  FROM pg_catalog.pg_depend d
  JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
  JOIN pg_catalog.pg_sequence q ON q.seqrelid = s.oid
  JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace
  JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
 WHERE d.classid = 'pg_catalog.pg_class'::regclass
   AND d.refclassid = 'pg_catalog.pg_class'::regclass
   AND d.refobjid = $1
   AND d.deptype IN ('a', 'i')
 ORDER BY a.attnum
