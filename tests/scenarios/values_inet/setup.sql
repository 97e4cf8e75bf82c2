-- inet/cidr/macaddr: v4 and v6, host bits, v4-mapped v6; inet -> cidr masks the host bits.
CREATE TABLE v (id int PRIMARY KEY, a inet, n cidr, mac macaddr, net inet, w int);
INSERT INTO v SELECT i, ('10.' || (i % 256) || '.' || (i / 256) || '.7/' || (8 + i % 25))::inet,
  ('2001:db8:' || to_hex(i) || '::/48')::cidr, ('08:00:2b:01:02:' || lpad(to_hex(i % 256), 2, '0'))::macaddr,
  CASE WHEN i % 2 = 0 THEN '::ffff:1.2.3.4/120'::inet ELSE ('192.168.' || (i % 256) || '.0/24')::inet END, i
FROM generate_series(1, 600) i;
