-- Used by catalog::incoming_foreign_keys: foreign keys of other tables that reference this one.
-- $1: the referenced table's oid. The definition text names the referenced table; it is read
-- before the swap renames anything and executed after, so it then resolves to the new table.
SELECT con.conname::text,
       con.conrelid,
       n.nspname::text,
       c.relname::text,
       pg_catalog.pg_get_constraintdef(con.oid) AS def,
       con.convalidated,
       pg_catalog.obj_description(con.oid, 'pg_constraint') AS comment,
       ARRAY(SELECT a.attname::text
               FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum
              ORDER BY k.ord) AS referenced_columns,
       c.relkind = 'p' AS partitioned
  FROM pg_catalog.pg_constraint con
  JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE con.contype = 'f' AND con.confrelid = $1 AND con.conrelid <> $1
   -- A partition's copy of its partitioned table's foreign key goes and comes with the parent's.
   AND NOT (c.relispartition AND con.conparentid <> 0)
 ORDER BY n.nspname, c.relname, con.conname
