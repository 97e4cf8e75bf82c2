-- A self-referencing foreign key (a tree); nodes are added under existing ones, leaves
-- removed, subtrees re-parented.
CREATE TABLE node (id int PRIMARY KEY, parent_id int REFERENCES node (id), name text);
INSERT INTO node SELECT i, NULLIF(i / 2, 0), 'n' || i FROM generate_series(1, 600) i;
