SELECT EXISTS (SELECT FROM pg_constraint WHERE conrelid = 'public.book'::regclass AND contype = 'f' AND confrelid = 'public.author'::regclass AND confdeltype = 'c' AND convalidated);
SELECT NOT EXISTS (SELECT FROM book b WHERE NOT EXISTS (SELECT FROM author a WHERE a.id = b.author_id));
SELECT (SELECT count(*) FROM book) = (SELECT count(*) FROM book b JOIN author a ON a.id = b.author_id);
