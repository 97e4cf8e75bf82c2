-- Used by catalog::policies: row level security policies of a table, as the parts of a
-- CREATE POLICY statement (roles already quoted). $1: the table's oid.
SELECT p.polname::text,
       CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END AS kind,
       CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                     WHEN 'd' THEN 'DELETE' ELSE 'ALL' END AS command,
       (SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC'
                               ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(r)) END, ', ')
          FROM unnest(p.polroles) AS r) AS roles,
       pg_catalog.pg_get_expr(p.polqual, p.polrelid) AS using_expr,
       pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) AS check_expr
  FROM pg_catalog.pg_policy p
 WHERE p.polrelid = $1
 ORDER BY p.polname
