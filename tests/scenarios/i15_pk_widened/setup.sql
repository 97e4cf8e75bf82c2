-- Issue 15: the primary key (id) becomes (tenant_id, id). Writers move rows between tenants
-- (the new key of a row changes), delete and insert. Replay finds rows by the old key (id)
-- through a temporary unique index the swap drops.
CREATE TABLE account (id int PRIMARY KEY, tenant_id int NOT NULL, balance bigint NOT NULL DEFAULT 0, note text);
ALTER TABLE account REPLICA IDENTITY USING INDEX account_pkey;
INSERT INTO account SELECT i, i % 7, i * 10, 'n' || i FROM generate_series(1, 3000) i;
