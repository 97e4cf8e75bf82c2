SELECT EXISTS (SELECT FROM pg_constraint WHERE conrelid = 'public.device'::regclass AND contype = 'p' AND conname = 'device_serial_idx');
SELECT count(*) = 1 FROM pg_index WHERE indrelid = 'public.device'::regclass;
