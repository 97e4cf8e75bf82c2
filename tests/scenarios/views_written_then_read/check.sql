SELECT (SELECT count(*) FROM account_v) = (SELECT count(*) FROM account);
SELECT (SELECT count(*) FROM account_vv) = (SELECT count(*) FROM account WHERE balance > 1000);
