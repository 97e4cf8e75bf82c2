-- A lease moves to a new id with the same span (delete and insert in one statement); spans are
-- rewritten in place. Values of the column's own type only, as the type changes at the swap.
-- tx weight=2
WITH d AS (DELETE FROM {t} WHERE id = $1 RETURNING grp, span) INSERT INTO {t} SELECT $9, grp, span FROM d;
-- tx
UPDATE {t} SET span = span * '[0,1000000)' WHERE id = $2;
-- tx
DELETE FROM {t} WHERE grp = $3 % 10 AND lower(span) = ($3 / 10) * 100;
