SELECT array_agg(a.attname ORDER BY k.ord)::text = '{tenant_id,id}' FROM pg_index i, unnest(i.indkey) WITH ORDINALITY k(attnum, ord) JOIN pg_attribute a ON a.attnum = k.attnum WHERE i.indrelid = 'public.account'::regclass AND i.indisprimary AND a.attrelid = 'public.account'::regclass;
SELECT count(*) = 1 FROM pg_index WHERE indrelid = 'public.account'::regclass;
SELECT c.relreplident = 'd' OR EXISTS (SELECT FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident AND i.indisprimary) FROM pg_class c WHERE c.oid = 'public.account'::regclass;
SELECT NOT EXISTS (SELECT FROM pg_class WHERE relname LIKE 'hotswap\_%');
