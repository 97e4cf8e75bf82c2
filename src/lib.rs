//! pg-hotswap: rewrite a large, hot PostgreSQL table into a new shape without downtime.
//!
//! The binary (`src/main.rs`) is a thin edge over this library. The flow lives in `migrator`;
//! each phase has its own module (`preflight`, `shadow`, `capture`, `chunks`/`batching`/`copier`, `build`,
//! `replay`, `swap`), state in the database lives in `state`, and every name reaches SQL through
//! `ident`. `commands` is the command line (flags, the target resolved once, each command);
//! `demo` holds the demo with its throwaway cluster and workload (`demo::cluster`,
//! `demo::workload`), which also serve the tests and the benchmarks, never the engine.

pub mod acl;
pub mod alter_text;
pub mod batching;
pub mod build;
pub mod capture;
pub mod catalog;
pub mod checks;
pub mod chunks;
pub mod commands;
pub mod conn;
pub mod copier;
pub mod demo;
pub mod dependents;
pub mod error;
pub mod failpoint;
pub mod governor;
pub mod ident;
pub mod locking;
pub mod mapping;
pub mod migrator;
pub mod oracle;
pub mod plan;
pub mod planner;
pub mod preflight;
pub mod probe;
pub mod progress;
pub mod replay;
pub mod revert;
pub mod sampling;
pub mod shadow;
pub mod snapshots;
pub mod state;
pub mod statements;
pub mod step;
pub mod swap;
pub mod target;
pub mod tls;
pub mod ui;
pub mod verify;
pub mod window;
