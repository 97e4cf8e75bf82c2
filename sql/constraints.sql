-- Used by catalog::constraints: check and foreign-key constraints of a table (index-backed ones
-- come with the indexes), with the referenced table's schema and name (null for a check). $1: the
-- table's oid.
SELECT con.oid,
       con.conname::text,
       con.contype::text,
       pg_catalog.pg_get_constraintdef(con.oid) AS def,
       con.convalidated,
       con.confrelid,
       ARRAY(SELECT a.attname::text
               FROM unnest(con.conkey) AS k(attnum)
               JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum)
         AS columns,
       pg_catalog.obj_description(con.oid, 'pg_constraint') AS comment,
       ARRAY(SELECT a.attname::text
               FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum
              ORDER BY k.ord) AS referenced_columns,
       rn.nspname::text AS referenced_schema,
       rc.relname::text AS referenced_name
  FROM pg_catalog.pg_constraint con
  LEFT JOIN pg_catalog.pg_class rc ON rc.oid = con.confrelid
  LEFT JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace
 WHERE con.conrelid = $1 AND con.contype IN ('c', 'f')
 ORDER BY con.conname
