-- tx
UPDATE {t} SET nickname = 'n' || $10 WHERE id = $1;
