//! The rewrite itself: the phases and what they share (DESIGN.md). `migrator` runs them in order —
//! `preflight` (with its `checks`, shared with `plan`), `shadow` (the ALTER applied, the `plan` derived), `capture`, the copy (`chunks`,
//! `batching`, `copier`), `build`, `replay`, `verify`, `snapshots`, `swap` — and `revert` is the
//! way back. The ALTER's text is read by `alter_text` and followed by `mapping`; the sample
//! `oracle` compares it with PostgreSQL's own ALTER before anything is copied; `one_partition` rewrites
//! a single partition and attaches it back (issue 15); `dependents`
//! refuses what the ALTER cannot do. Every DDL statement is a `step` value, listed by `plan`.

pub mod alter_text;
pub mod batching;
pub mod build;
pub mod capture;
pub mod carried;
pub mod checks;
pub mod chunks;
pub mod copier;
pub mod dependents;
pub mod fastpath;
pub mod mapping;
pub mod migrator;
pub mod one_partition;
pub mod oracle;
pub mod partition_ranges;
pub mod partition_report;
pub mod partition_sample;
pub mod partitioning;
pub mod plan;
pub mod preflight;
pub mod replay;
pub mod revert;
pub mod shadow;
pub mod snapshots;
pub mod step;
pub mod swap;
pub mod verify;
