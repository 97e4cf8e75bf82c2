-- Used by catalog::carried_fingerprint: a version of what the swap carries from the source as it
-- is at the swap rather than as it was when the run started (owner, privileges, row level
-- security and policies, comments, storage options, per-column settings, index statistics
-- targets, replica identity, triggers' state, publications, extended statistics;
-- `rewrite::carried`). `swap` reads those when it starts and compares this before each attempt:
-- a GRANT, COMMENT ON or ALTER ... SET made since makes it read them again instead of swapping
-- without them. It is cheap, reading no text: every such change writes a new version of a
-- catalog row (a new xmin) or adds or removes one, and the md5 is over the rows' identities and
-- xmins. VACUUM and ANALYZE update pg_class in place (same xmin) and do not move
-- it. The views over the table (at any depth) are in it too: the swap re-creates them from
-- their definition, owner, grants and comments as read. $1: the table's oid. The capture
-- triggers (named hotswap...) are the tool's and left out, as by catalog::fingerprint.
WITH RECURSIVE t AS (SELECT $1::oid AS oid),
     ix AS (SELECT i.indexrelid AS oid FROM pg_catalog.pg_index i, t WHERE i.indrelid = t.oid),
     views(oid) AS (SELECT t.oid FROM t
                    UNION
                    SELECT r.ev_class FROM views v
                      JOIN pg_catalog.pg_depend d ON d.refclassid = 'pg_catalog.pg_class'::regclass
                                                 AND d.refobjid = v.oid
                                                 AND d.classid = 'pg_catalog.pg_rewrite'::regclass
                      JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid),
     rel AS (SELECT views.oid FROM views
             UNION ALL SELECT ix.oid FROM ix
             UNION ALL SELECT c.reltoastrelid FROM pg_catalog.pg_class c, t
                        WHERE c.oid = t.oid AND c.reltoastrelid <> 0),
     described AS (SELECT rel.oid FROM rel
                   UNION ALL SELECT co.oid FROM pg_catalog.pg_constraint co, t WHERE co.conrelid = t.oid
                   UNION ALL SELECT g.oid FROM pg_catalog.pg_trigger g, t WHERE g.tgrelid = t.oid
                   UNION ALL SELECT p.oid FROM pg_catalog.pg_policy p, t WHERE p.polrelid = t.oid
                   UNION ALL SELECT s.oid FROM pg_catalog.pg_statistic_ext s, t WHERE s.stxrelid = t.oid)
SELECT md5(string_agg(v, ',' ORDER BY v)) FROM (
    SELECT 'c' || c.oid || ':' || c.xmin FROM pg_catalog.pg_class c
     WHERE c.oid = ANY (ARRAY(SELECT oid FROM rel))
    UNION ALL
    SELECT 'a' || a.attrelid || '.' || a.attnum || ':' || a.xmin FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = ANY (ARRAY(SELECT oid FROM rel)) AND a.attnum > 0
    UNION ALL
    SELECT 'd' || d.objoid || '.' || d.classoid || '.' || d.objsubid || ':' || d.xmin
      FROM pg_catalog.pg_description d WHERE d.objoid = ANY (ARRAY(SELECT oid FROM described))
    UNION ALL
    SELECT 'w' || r.oid || ':' || r.xmin FROM pg_catalog.pg_rewrite r
     WHERE r.ev_class = ANY (ARRAY(SELECT oid FROM views))
    UNION ALL
    SELECT 'p' || p.oid || ':' || p.xmin FROM pg_catalog.pg_policy p, t WHERE p.polrelid = t.oid
    UNION ALL
    SELECT 't' || g.oid || ':' || g.xmin FROM pg_catalog.pg_trigger g, t
     WHERE g.tgrelid = t.oid AND g.tgname NOT LIKE 'hotswap%'
    UNION ALL
    SELECT 'r' || r.oid || ':' || r.xmin FROM pg_catalog.pg_publication_rel r, t WHERE r.prrelid = t.oid
    UNION ALL
    SELECT 's' || s.oid || ':' || s.xmin FROM pg_catalog.pg_statistic_ext s, t WHERE s.stxrelid = t.oid
) x(v)
