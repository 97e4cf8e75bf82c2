SELECT EXISTS (SELECT FROM pg_constraint WHERE conrelid = 'public.account'::regclass AND conname = 'account_pkey' AND contype = 'p' AND array_length(conkey, 1) = 2);
SELECT EXISTS (SELECT FROM pg_constraint WHERE conrelid = 'public.invoice'::regclass AND contype = 'f' AND confrelid = 'public.account'::regclass AND convalidated);
SELECT NOT EXISTS (SELECT FROM invoice i WHERE NOT EXISTS (SELECT FROM account a WHERE a.id = i.account_id));
