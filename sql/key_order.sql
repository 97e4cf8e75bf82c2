-- Used by chunks::key_order: how the row-identity columns of a table are ordered by its key
-- index, one row per key column in key order. $1: the table's oid; $2: the key column names in
-- key order. The key index is the primary key, else a valid, unique, non-partial index on
-- exactly these columns in this order.
-- Per column: the column's type (with its modifier) and its own collation (for COLLATE on
-- comparisons with the change log); the index's collation for that column (bounds are compared
-- in it); and whether range bounds over it are safe (`orderable`) or why not (`why`): the index
-- must be a btree whose operator class is the type's default one, its collation deterministic,
-- and the operators `<`, `<=` and `>` that the session resolves for the type must be that
-- operator family's, so that ORDER BY, the chunk predicates and the bound check all use one order.
WITH k AS (
    SELECT n.ord::int4 AS ord, a.attnum, a.atttypid, a.atttypmod, a.attcollation, a.attnotnull
      FROM unnest($2::text[]) WITH ORDINALITY AS n(name, ord)
      JOIN pg_catalog.pg_attribute a
        ON a.attrelid = $1 AND a.attname = n.name AND a.attnum > 0 AND NOT a.attisdropped
), ix AS (
    SELECT i.indexrelid, i.indkey, i.indclass, i.indcollation, i.indoption
      FROM pg_catalog.pg_index i
     WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid AND i.indpred IS NULL
       AND i.indnkeyatts = (SELECT count(*) FROM k)
       AND NOT EXISTS (SELECT 1 FROM k WHERE i.indkey[k.ord - 1] <> k.attnum)
     ORDER BY i.indisprimary DESC, i.indexrelid
     LIMIT 1
), c AS (
    SELECT k.ord,
           pg_catalog.format_type(k.atttypid, k.atttypmod) AS type_name,
           k.atttypid, k.attnotnull, k.attcollation,
           am.amname, oc.opcdefault, oc.opcfamily, oc.opcintype,
           ix.indoption[k.ord - 1] AS option,
           ix.indcollation[k.ord - 1] AS icoll
      FROM k
      LEFT JOIN ix ON true
      LEFT JOIN pg_catalog.pg_opclass oc ON oc.oid = ix.indclass[k.ord - 1]
      LEFT JOIN pg_catalog.pg_am am ON am.oid = oc.opcmethod
), o AS (
    SELECT c.*,
           (SELECT array_agg(ap.amopopr ORDER BY ap.amopstrategy)
              FROM pg_catalog.pg_amop ap
             WHERE ap.amopfamily = c.opcfamily AND ap.amoplefttype = c.opcintype
               AND ap.amoprighttype = c.opcintype AND ap.amopstrategy IN (1, 2, 5)) AS family_ops,
           ARRAY[pg_catalog.to_regoperator(pg_catalog.format('<(%s,%s)', c.opcintype::regtype, c.opcintype::regtype))::oid,
                 pg_catalog.to_regoperator(pg_catalog.format('<=(%s,%s)', c.opcintype::regtype, c.opcintype::regtype))::oid,
                 pg_catalog.to_regoperator(pg_catalog.format('>(%s,%s)', c.opcintype::regtype, c.opcintype::regtype))::oid] AS resolved,
           ARRAY[pg_catalog.to_regoperator(pg_catalog.format('<(%s,%s)', c.atttypid::regtype, c.atttypid::regtype))::oid,
                 pg_catalog.to_regoperator(pg_catalog.format('<=(%s,%s)', c.atttypid::regtype, c.atttypid::regtype))::oid,
                 pg_catalog.to_regoperator(pg_catalog.format('>(%s,%s)', c.atttypid::regtype, c.atttypid::regtype))::oid] AS own,
           ic.collisdeterministic AS deterministic,
           pg_catalog.quote_ident(icn.nspname) || '.' || pg_catalog.quote_ident(ic.collname) AS index_collation,
           pg_catalog.quote_ident(acn.nspname) || '.' || pg_catalog.quote_ident(ac.collname) AS column_collation
      FROM c
      LEFT JOIN pg_catalog.pg_collation ic ON ic.oid = c.icoll AND c.icoll <> 0
      LEFT JOIN pg_catalog.pg_namespace icn ON icn.oid = ic.collnamespace
      LEFT JOIN pg_catalog.pg_collation ac ON ac.oid = c.attcollation AND c.attcollation <> 0
      LEFT JOIN pg_catalog.pg_namespace acn ON acn.oid = ac.collnamespace
)
SELECT o.ord,
       o.type_name,
       o.index_collation,
       o.column_collation,
       CASE
         WHEN o.amname IS NULL THEN 'no unique index on exactly the key columns'
         WHEN o.amname <> 'btree' THEN 'the key index is not a btree'
         WHEN NOT o.attnotnull THEN 'the key column may be NULL'
         WHEN NOT o.opcdefault THEN 'the key index uses a non-default operator class'
         WHEN o.deterministic IS FALSE THEN 'the key has a non-deterministic collation'
         WHEN o.family_ops IS NULL OR cardinality(o.family_ops) <> 3
           THEN 'the key''s operator class has no <, <= and >'
         WHEN o.resolved IS DISTINCT FROM o.family_ops
           THEN 'the operators <, <= and > of the key''s type resolve outside its operator class'
         WHEN o.atttypid <> o.opcintype AND o.own <> ARRAY[NULL, NULL, NULL]::oid[]
              AND o.own IS DISTINCT FROM o.family_ops
           THEN 'the operators <, <= and > of the key''s type resolve outside its operator class'
       END AS why
  FROM o
 ORDER BY o.ord
