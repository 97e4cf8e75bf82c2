SELECT NOT convalidated FROM pg_constraint WHERE conrelid = 'public.stock'::regclass AND conname = 'stock_qty_nonnegative';
SELECT NOT convalidated FROM pg_constraint WHERE conrelid = 'public.stock'::regclass AND conname = 'stock_warehouse_fk';
SELECT NOT convalidated FROM pg_constraint WHERE contypid = 'public.positive_int'::regtype AND conname = 'positive';
SELECT count(*) = 50 FROM stock WHERE qty < 0 AND id <= 50;
