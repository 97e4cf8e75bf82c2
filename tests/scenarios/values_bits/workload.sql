-- tx
UPDATE {t} SET b = B'10101010', vb = B'1' WHERE id = $1;
-- tx
UPDATE {t} SET w = $10 WHERE id = $2;
-- tx
INSERT INTO {t} VALUES ($9, B'00000001', B'0', 0);
