SELECT EXISTS (SELECT FROM pg_constraint WHERE conrelid = 'public.node'::regclass AND contype = 'f' AND confrelid = 'public.node'::regclass AND convalidated);
SELECT NOT EXISTS (SELECT FROM node c WHERE c.parent_id IS NOT NULL AND NOT EXISTS (SELECT FROM node p WHERE p.id = c.parent_id));
