-- xml as stored: declarations (UTF-8, another encoding, standalone), comments, processing
-- instructions, content fragments; a domain over xml and xml[]. PostgreSQL's ALTER keeps them.
CREATE DOMAIN xdoc AS xml;
CREATE TABLE v (id int PRIMARY KEY, x xml, d xdoc, xs xml[], w int);
INSERT INTO v SELECT i, (CASE i % 6
    WHEN 0 THEN '<?xml version="1.0" encoding="UTF-8"?><a>' || i || '</a>'
    WHEN 1 THEN '<?xml version="1.0" encoding="ISO-8859-1"?><a>é' || i || '</a>'
    WHEN 2 THEN '<?xml version="1.0" standalone="yes"?><a/>'
    WHEN 3 THEN '<!-- c --><?pi x?><a  b="1" >' || i || '</a>'
    WHEN 4 THEN 'fragment ' || i || ' <b/>'
    ELSE '<?xml version="1.0"?>' || chr(10) || '<a/>' END)::xml,
  ('<?xml version="1.0" encoding="UTF-8"?><d>' || i || '</d>')::xdoc,
  ARRAY[('<?xml version="1.0"?><e>' || i || '</e>')::xml, NULL], i
FROM generate_series(1, 600) i;
