-- tx weight=2
UPDATE {t} SET c = circle(center(c), 1 + ($10 % 300) / 100.0) WHERE id = $1;
-- tx
DELETE FROM {t} WHERE c && circle(point($2 % 30 * 10, $2 / 30 * 10), 0.5);
INSERT INTO {t} (id, c) VALUES ($9, circle(point($2 % 30 * 10, $2 / 30 * 10), 2)) ON CONFLICT DO NOTHING;
