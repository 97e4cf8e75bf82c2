-- tx weight=2
DELETE FROM {t} WHERE room = $1 % 20 AND during && tsrange('2026-01-01'::timestamp + ($1 / 20) * interval '1 hour', '2026-01-01'::timestamp + ($1 / 20 + 1) * interval '1 hour');
INSERT INTO {t} VALUES ($9, $1 % 20, tsrange('2026-01-01'::timestamp + ($1 / 20) * interval '1 hour', '2026-01-01'::timestamp + ($1 / 20) * interval '1 hour' + interval '30 minutes')) ON CONFLICT DO NOTHING;
-- tx weight=2
UPDATE {t} SET during = tsrange(lower(during), lower(during) + (1 + $10 % 60) * interval '1 minute') WHERE id = $2;
