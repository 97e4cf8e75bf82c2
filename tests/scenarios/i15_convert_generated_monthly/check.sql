SELECT pg_get_partkeydef('public.reading'::regclass) = 'RANGE (created_at)';
SELECT array_agg(c.relname::text || ' ' || pg_get_expr(c.relpartbound, c.oid) ORDER BY c.relname)::text = '{"reading_default DEFAULT","reading_p202511 FOR VALUES FROM (''2025-11-01 00:00:00'') TO (''2025-12-01 00:00:00'')","reading_p202512 FOR VALUES FROM (''2025-12-01 00:00:00'') TO (''2026-01-01 00:00:00'')","reading_p202601 FOR VALUES FROM (''2026-01-01 00:00:00'') TO (''2026-02-01 00:00:00'')","reading_p202602 FOR VALUES FROM (''2026-02-01 00:00:00'') TO (''2026-03-01 00:00:00'')"}' FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'public.reading'::regclass;
SELECT count(*) > 0 FROM ONLY public.reading_p202601;
SELECT NOT EXISTS (SELECT FROM ONLY public.reading_p202512 WHERE created_at < '2025-12-01' OR created_at >= '2026-01-01');
SELECT NOT EXISTS (SELECT FROM pg_class WHERE relname LIKE 'hotswap\_%');
