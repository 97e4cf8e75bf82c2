-- Used by catalog::grants_of: the privileges granted on relations and on their columns.
-- $1: the relations' oids (oid[]). column_name is NULL for table-level privileges; grantee is
-- already quoted (or PUBLIC); relation is the oid the row belongs to. The owner's implicit
-- privileges show up too and are harmless to re-grant. One statement for many relations: the
-- swap reads every partition's privileges under its lock (issue 15).
SELECT a.privilege_type::text,
       NULL::text AS column_name,
       CASE WHEN a.grantee = 0 THEN 'PUBLIC'
            ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END AS grantee,
       a.is_grantable,
       c.oid AS relation
  FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
 WHERE c.oid = ANY ($1::oid[])
UNION ALL
SELECT a.privilege_type::text,
       att.attname::text,
       CASE WHEN a.grantee = 0 THEN 'PUBLIC'
            ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END,
       a.is_grantable,
       att.attrelid
  FROM pg_catalog.pg_attribute att, pg_catalog.aclexplode(att.attacl) a
 WHERE att.attrelid = ANY ($1::oid[]) AND att.attnum > 0 AND NOT att.attisdropped
