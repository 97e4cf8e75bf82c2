-- Rows of group g have ids g*10 .. g*10+9 (the group of a row never changes).
-- tx weight=2
SELECT 1 FROM {t} WHERE grp = $1 % 80 ORDER BY id FOR UPDATE;
UPDATE {t} AS a SET place = b.place FROM {t} AS b WHERE a.id = ($1 % 80) * 10 + $3 % 10 AND b.id = ($1 % 80) * 10 + $4 % 10;
UPDATE {t} SET place = -$9 WHERE id = ($1 % 80) * 10 + $4 % 10;
-- tx
SELECT 1 FROM {t} WHERE grp = $2 % 80 ORDER BY id FOR UPDATE;
UPDATE {t} SET place = 9 - place WHERE grp = $2 % 80;
