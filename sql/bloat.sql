-- Used by catalog::bloat: the estimated bloat of every ordinary table, heap and btree indexes,
-- from the planner's statistics (the pgexperts / check_postgres "table bloat" estimate: the
-- pages the rows need, from reltuples and the columns' average width in pg_stats, against
-- relpages). Needs no extension; a table or index without statistics gets no estimate (NULL).
-- $1: a schema left out (the tool's state schema); $2: the least size listed (heap + indexes,
-- bytes).
WITH tables AS (
  SELECT c.oid, n.nspname, c.relname,
         c.reltuples::float8 AS reltuples, c.relpages::float8 AS relpages,
         current_setting('block_size')::float8 AS bs,
         COALESCE((SELECT substring(o FROM '^fillfactor=([0-9]+)$')::float8
                     FROM unnest(c.reloptions) o WHERE o LIKE 'fillfactor=%'), 100) AS fillfactor,
         pg_catalog.pg_relation_size(c.oid) AS heap_bytes,
         pg_catalog.pg_indexes_size(c.oid) AS index_bytes
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind = 'r'
     AND n.nspname NOT IN ('pg_catalog', 'information_schema')
     AND n.nspname NOT LIKE 'pg\_toast%'
     AND n.nspname NOT LIKE 'pg\_temp%'
     AND n.nspname <> $1::text
     AND pg_catalog.pg_relation_size(c.oid) + pg_catalog.pg_indexes_size(c.oid) >= $2::int8
),
cols AS (
  SELECT t.oid, a.attnum, s.avg_width::float8 AS width, s.null_frac::float8 AS null_frac
    FROM tables t
    JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_catalog.pg_stats s
           ON s.schemaname = t.nspname AND s.tablename = t.relname AND s.attname = a.attname
          AND NOT s.inherited
),
heap AS (
  -- A row: the tuple header (23 bytes and the null bitmap, aligned), the data (the columns'
  -- average width weighted by how often they are not null, aligned), and its line pointer.
  SELECT t.oid,
         CASE WHEN t.reltuples >= 0 AND count(c.attnum) = count(c.width) THEN
           ceil((23 + CASE WHEN max(c.null_frac) > 0 THEN ceil(count(c.attnum) / 8.0) ELSE 0 END) / 8.0) * 8
           + ceil(COALESCE(sum((1 - c.null_frac) * c.width), 0) / 8.0) * 8 + 4
         END AS row_bytes
    FROM tables t
    LEFT JOIN cols c ON c.oid = t.oid
   GROUP BY t.oid, t.reltuples
),
idx AS (
  -- A btree entry: the index tuple header (8 bytes, 4 more for a null bitmap) and the key
  -- columns' widths, aligned, and its line pointer; an expression column has no estimate.
  SELECT i.indrelid AS oid, ic.relpages::float8 AS relpages,
         CASE WHEN ic.reltuples >= 0 THEN ic.reltuples::float8 ELSE t.reltuples END AS reltuples,
         COALESCE((SELECT substring(o FROM '^fillfactor=([0-9]+)$')::float8
                     FROM unnest(ic.reloptions) o WHERE o LIKE 'fillfactor=%'), 90) AS fillfactor,
         t.bs,
         (SELECT CASE WHEN bool_and(c.width IS NOT NULL) THEN
                   ceil((8 + CASE WHEN max(c.null_frac) > 0 THEN 4 ELSE 0 END + sum(c.width)) / 8.0) * 8 + 4
                 END
            FROM unnest(i.indkey::int2[]) k(attnum)
            LEFT JOIN cols c ON c.oid = i.indrelid AND c.attnum = k.attnum) AS entry_bytes
    FROM tables t
    JOIN pg_catalog.pg_index i ON i.indrelid = t.oid
    JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
    JOIN pg_catalog.pg_am am ON am.oid = ic.relam
   WHERE am.amname = 'btree'
),
idx_bloat AS (
  SELECT oid,
         count(*) FILTER (WHERE entry_bytes IS NOT NULL AND reltuples >= 0) AS estimated,
         COALESCE(sum(greatest(0, relpages - 1 - ceil(reltuples / greatest(1, floor(
                    (bs - 24 - 16) * fillfactor / 100 / entry_bytes)))) * bs)
                  FILTER (WHERE entry_bytes IS NOT NULL AND reltuples >= 0), 0) AS bloat_bytes
    FROM idx
   GROUP BY oid
)
SELECT t.oid,
       t.nspname::text,
       t.relname::text,
       t.heap_bytes::int8,
       t.index_bytes::int8,
       (greatest(0, t.relpages - ceil(t.reltuples / greatest(1, floor(
          (t.bs - 24) * t.fillfactor / 100 / h.row_bytes)))) * t.bs)::int8 AS heap_bloat_bytes,
       COALESCE(b.bloat_bytes, 0)::int8 AS index_bloat_bytes,
       COALESCE(b.estimated, 0)::int8 AS indexes_estimated,
       (SELECT count(*) FROM pg_catalog.pg_index i WHERE i.indrelid = t.oid)::int8 AS indexes
  FROM tables t
  JOIN heap h ON h.oid = t.oid
  LEFT JOIN idx_bloat b ON b.oid = t.oid
 ORDER BY t.oid
