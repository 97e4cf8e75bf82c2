//! All integration tests, built into one test binary (STYLE.md): one throwaway PostgreSQL cluster
//! per test run (or the server in `PGHOTSWAP_TEST_DSN`), a fresh database per test, so the tests
//! run in parallel under plain `cargo test`.

mod bloat;
mod blockers;
mod carry_over;
mod chunking;
mod cli;
mod cluster;
mod consistency;
mod disk;
mod end_to_end;
mod errors;
mod fast_path;
mod faults;
mod fleet;
mod harness;
mod hooks;
mod hostile;
mod keys;
mod layout;
mod locking;
mod log_file;
mod names;
mod objects_in_the_way;
mod oracle;
mod order_by;
mod partition_trees;
mod partitions;
mod pgbouncer;
mod plan;
mod privileges;
mod refusals;
mod resume;
mod revert;
mod row_identity;
mod scenarios;
mod semantics;
mod sequences;
mod soak;
mod statements;
mod steering;
mod timeouts;
mod tls;
mod versions;
mod views_during_run;
mod workload;
