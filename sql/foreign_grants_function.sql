-- Used by acl::keep_to_owner: who besides the owner may use a function. A function nobody
-- granted anything on still lets PUBLIC execute it (the NULL ACL means the default), so the
-- default is made explicit first. $1: the function, as quoted text for ::regprocedure. One row:
-- FUNCTION, its quoted qualified signature, and the quoted grantees (PUBLIC for grantee 0).
SELECT 'FUNCTION',
       pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(p.proname)
         || '(' || pg_catalog.pg_get_function_identity_arguments(p.oid) || ')',
       pg_catalog.string_agg(DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                             ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END, ', ')
  FROM pg_catalog.pg_proc p
  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace,
       pg_catalog.aclexplode(COALESCE(p.proacl, pg_catalog.acldefault('f', p.proowner))) a
 WHERE p.oid = $1::text::regprocedure
   AND a.grantee <> p.proowner
 GROUP BY n.nspname, p.proname, p.oid
