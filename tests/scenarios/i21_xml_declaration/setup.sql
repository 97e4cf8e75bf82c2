-- issue 21 input 4: xml values with an XML declaration are kept as stored.
CREATE TABLE docs (id int PRIMARY KEY, doc xml, n int);
INSERT INTO docs SELECT i,
  CASE WHEN i % 2 = 0 THEN ('<?xml version="1.0" encoding="UTF-8"?><r><n>' || i || '</n></r>')::xml
       ELSE ('<r><n>' || i || '</n></r>')::xml END, i
FROM generate_series(1, 600) i;
