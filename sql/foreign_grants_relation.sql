-- Used by acl::keep_to_owner: who besides the owner holds privileges on a relation and on the
-- sequences it owns (identity and serial columns). $1: the relation, as quoted text for
-- ::regclass. One row per object: its kind for REVOKE (TABLE or SEQUENCE), its quoted
-- qualified name, and the quoted grantees (PUBLIC for grantee 0), comma-separated.
SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
       pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname),
       pg_catalog.string_agg(DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                             ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END, ', ')
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace,
       pg_catalog.aclexplode(c.relacl) a
 WHERE (c.oid = $1::text::regclass
        OR c.oid IN (SELECT d.objid FROM pg_catalog.pg_depend d
                      WHERE d.classid = 'pg_catalog.pg_class'::regclass
                        AND d.refclassid = 'pg_catalog.pg_class'::regclass
                        AND d.refobjid = $1::text::regclass
                        AND d.deptype IN ('a', 'i')))
   AND a.grantee <> c.relowner
 GROUP BY c.relkind, n.nspname, c.relname
