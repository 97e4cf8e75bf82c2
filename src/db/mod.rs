//! Connection and catalog access: opening the tool's sessions (`conn`, `tls`), the only place
//! names and values become SQL text (`ident`), reading what PostgreSQL knows about a table by OID
//! (`catalog`), the one lock rule for statements that lock a live table (`locking`), who blocks a
//! lock request and ending them when asked (`blockers`), the one rule for redoing work whose
//! session was lost (`faults`), and the privileges on the tool's own objects (`acl`). Nothing
//! here knows about a run's phases.

pub mod acl;
pub mod blockers;
pub mod catalog;
pub mod conn;
pub mod faults;
pub mod ident;
pub mod locking;
pub mod tls;
