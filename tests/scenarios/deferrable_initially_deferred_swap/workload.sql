-- tx weight=2
SELECT 1 FROM {t} WHERE id IN ($1, $2) ORDER BY id FOR UPDATE;
UPDATE {t} AS a SET pos = b.pos FROM {t} AS b WHERE (a.id, b.id) IN (($1, $2), ($2, $1));
-- tx
SELECT 1 FROM {t} WHERE id IN ($3, $4) ORDER BY id FOR UPDATE;
UPDATE {t} AS a SET pos = b.pos FROM {t} AS b WHERE a.id = $3 AND b.id = $4;
UPDATE {t} SET pos = $9 WHERE id = $4;
