SELECT (SELECT count(*) FROM account_v) = (SELECT count(*) FROM account);
SELECT (SELECT count(*) FROM rich_v) = (SELECT count(*) FROM account WHERE balance > 1000);
SELECT EXISTS (SELECT FROM pg_matviews WHERE matviewname = 'owner_totals');
SELECT NOT EXISTS (SELECT FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid WHERE r.ev_class = 'public.account_v'::regclass AND d.refobjid <> 'public.account'::regclass AND d.refobjid <> 'public.account_v'::regclass AND d.refclassid = 'pg_class'::regclass);
