-- tx
SELECT pg_advisory_xact_lock(1315);
UPDATE {t} SET pos = pos + 1;
-- tx
SELECT pg_advisory_xact_lock(1315);
UPDATE {t} SET pos = pos - 1;
