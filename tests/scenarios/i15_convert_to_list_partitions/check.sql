SELECT pg_get_partkeydef('public.account'::regclass) = 'LIST (region)';
SELECT array_agg(c.relname::text || ' ' || pg_get_expr(c.relpartbound, c.oid) ORDER BY c.relname)::text = '{"account_apac FOR VALUES IN (''apac'')","account_eu FOR VALUES IN (''eu'')","account_other DEFAULT","account_us FOR VALUES IN (''us'')"}' FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'public.account'::regclass;
SELECT array_agg(c.relname::text ORDER BY c.relname)::text = '{account_pkey,account_region_balance_idx}' FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'public.account'::regclass;
SELECT count(*) > 0 FROM ONLY public.account_other;
SELECT NOT EXISTS (SELECT FROM ONLY public.account_eu WHERE region <> 'eu');
SELECT NOT EXISTS (SELECT FROM pg_class WHERE relname LIKE 'hotswap\_%');
