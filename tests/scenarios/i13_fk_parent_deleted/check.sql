SELECT EXISTS (SELECT FROM pg_constraint WHERE conrelid = 'public.child'::regclass AND contype = 'f' AND convalidated);
SELECT NOT EXISTS (SELECT FROM child c WHERE NOT EXISTS (SELECT FROM parent p WHERE p.id = c.parent_id));
