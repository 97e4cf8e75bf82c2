//! All integration tests, built into one test binary (STYLE.md): one throwaway PostgreSQL cluster
//! per test run (or the server in `PGHOTSWAP_TEST_DSN`), a fresh database per test, so the tests
//! run in parallel under plain `cargo test`.

mod carry_over;
mod chunking;
mod cli;
mod cluster;
mod end_to_end;
mod errors;
mod harness;
mod hostile;
mod oracle;
mod plan;
mod privileges;
mod resume;
mod revert;
mod soak;
mod steering;
mod tls;
mod workload;
