-- Used by catalog::grants: the privileges granted on a relation and on its columns.
-- $1: the relation's oid. column_name is NULL for table-level privileges; grantee is already
-- quoted (or PUBLIC). The owner's implicit privileges show up too and are harmless to re-grant.
SELECT a.privilege_type::text,
       NULL::text AS column_name,
       CASE WHEN a.grantee = 0 THEN 'PUBLIC'
            ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END AS grantee,
       a.is_grantable
  FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
 WHERE c.oid = $1
UNION ALL
SELECT a.privilege_type::text,
       att.attname::text,
       CASE WHEN a.grantee = 0 THEN 'PUBLIC'
            ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END,
       a.is_grantable
  FROM pg_catalog.pg_attribute att, pg_catalog.aclexplode(att.attacl) a
 WHERE att.attrelid = $1 AND att.attnum > 0 AND NOT att.attisdropped
