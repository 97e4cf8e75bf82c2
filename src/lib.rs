//! pg-hotswap: rewrite a large, hot PostgreSQL table into a new shape without downtime.
//!
//! The binary (`src/main.rs`) is a thin edge over this library. The library is in layers, each a
//! folder that uses only the ones below it (docs/architecture.md; `tests/test/layout.rs` checks
//! it): `error`, `failpoint` and `output` at the bottom, then `db` (connections, identifiers,
//! the catalog, the lock rule), `state` (the state schema's tables), `pacing` (the governor),
//! `rewrite` (the phases, run in order by `rewrite::migrator`), `dryrun` (`plan`) and `demo`,
//! and `commands` (the command line) on top. `dryrun` and `pacing` are private to the crate; the
//! rest is what the binary, the tests and the benchmarks use.

pub mod commands;
pub mod db;
pub mod demo;
mod dryrun;
pub mod error;
pub mod failpoint;
pub mod output;
mod pacing;
pub mod rewrite;
pub mod state;
