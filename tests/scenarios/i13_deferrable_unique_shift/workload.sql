-- tx
UPDATE {t} SET pos = pos + 1;
-- tx
UPDATE {t} SET pos = pos - 1;
