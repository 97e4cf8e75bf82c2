SELECT pg_get_partkeydef('public.session'::regclass) = 'HASH (id)';
SELECT count(*) = 4 FROM pg_inherits WHERE inhparent = 'public.session'::regclass;
SELECT bool_and(n > 0) FROM (SELECT count(*) AS n FROM public.session GROUP BY tableoid) s;
SELECT array_agg(c.relname::text ORDER BY c.relname)::text = '{session_pkey,session_user_idx}' FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'public.session'::regclass;
SELECT NOT EXISTS (SELECT FROM pg_class WHERE relname LIKE 'hotswap\_%');
