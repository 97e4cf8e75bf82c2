SELECT EXISTS (SELECT FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'public.reading'::regclass AND c.relname = 'reading_pk' AND i.indisprimary AND i.indisclustered);
SELECT count(*) = 2 FROM pg_index WHERE indrelid = 'public.reading'::regclass;
