-- issue 21 input 3: a citext key changed to text while the application lowers (and raises)
-- the addresses: the same citext key, two different text keys.
CREATE EXTENSION IF NOT EXISTS citext;
CREATE TABLE users (email citext PRIMARY KEY, n int);
INSERT INTO users SELECT 'User' || i || '@Example.org', i FROM generate_series(1, 600) i;
