-- The WHERE clauses mean the same on citext and text, before and after the swap.
-- tx weight=3
UPDATE {t} SET email = lower(email) WHERE lower(email) = lower('User' || $1 || '@Example.org');
-- tx
UPDATE {t} SET email = upper(email), n = n + 1 WHERE lower(email) = lower('User' || $1 || '@Example.org');
-- tx
INSERT INTO {t} VALUES ('New' || $9 || '@Example.org', 0);
