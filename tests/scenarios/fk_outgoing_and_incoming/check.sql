SELECT count(*) = 2 FROM pg_constraint WHERE contype = 'f' AND convalidated AND (conrelid = 'public.store'::regclass OR confrelid = 'public.store'::regclass);
SELECT NOT EXISTS (SELECT FROM sale s WHERE NOT EXISTS (SELECT FROM store t WHERE t.id = s.store_id));
SELECT NOT EXISTS (SELECT FROM store s WHERE NOT EXISTS (SELECT FROM region r WHERE r.id = s.region_id));
