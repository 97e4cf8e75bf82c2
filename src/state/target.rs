//! The table a command works on, resolved once (issue 17, item 3): `--dsn`, `--table` and
//! `--state-schema` become one control session, the table's oid and the state schema, before the
//! command starts. Every command (`run`, `plan`, `resume`, `abort`, `pause`, `cutover`,
//! `revert`, `finish`, `status`) starts here instead of connecting and resolving on its own.
//!
//! Invariant kept here: `--table` is resolved exactly once per command, by
//! `catalog::resolve_table` (PostgreSQL's own rules: quoted parts kept, unquoted folded, no
//! schema: search_path), on the session the command then works on. Only an interrupted run
//! resolves again, on a fresh session, because its own sessions are gone.
//!
//! It sits below both the command layer and the phases (it uses only `conn`, `catalog` and
//! `state`), so the flow can take a [`Target`] without importing the command line.

use crate::db::catalog;
use crate::db::conn::{self, ConnSpec};
use crate::error::Result;
use crate::state::State;
use tokio_postgres::types::Oid;
use tokio_postgres::Client;

/// What names a command's table, as given on the command line (checked, not yet resolved).
#[derive(Clone, Debug)]
pub struct TargetSpec {
    pub conn: ConnSpec,
    /// `--table` as the user typed it: how messages and the suggested next commands name it.
    pub table: String,
    pub state_schema: String,
}

impl TargetSpec {
    pub fn new(conn: &ConnSpec, table: &str, state_schema: &str) -> TargetSpec {
        TargetSpec {
            conn: conn.clone(),
            table: table.to_string(),
            state_schema: state_schema.to_string(),
        }
    }

    /// Connects (a session named `pg-hotswap/<role>`) and resolves the table.
    pub async fn resolve(&self, role: &str) -> Result<Target> {
        Session::open(&self.conn, &self.state_schema, role)
            .await?
            .resolve(self)
            .await
    }
}

/// A command's control session and the state schema it reads, before the table is resolved:
/// `status` and the steering commands look for the state schema first.
pub struct Session {
    pub client: Client,
    pub state: State,
}

impl Session {
    pub async fn open(conn: &ConnSpec, state_schema: &str, role: &str) -> Result<Session> {
        Ok(Session {
            client: conn::connect(conn, role).await?,
            state: State::new(state_schema),
        })
    }

    /// Whether the state schema (its `runs` table) exists: no run was ever recorded without it.
    pub async fn state_exists(&self) -> Result<bool> {
        self.state.exists(&self.client).await
    }

    /// The oid of `table` as the user typed it (a refusal naming the table when there is none).
    pub async fn oid_of(&self, table: &str) -> Result<Oid> {
        catalog::resolve_table(&self.client, table).await
    }

    /// Resolves `spec`'s table on this session.
    pub async fn resolve(self, spec: &TargetSpec) -> Result<Target> {
        let oid = self.oid_of(&spec.table).await?;
        Ok(Target {
            conn: spec.conn.clone(),
            table: spec.table.clone(),
            state: self.state,
            oid,
            client: self.client,
        })
    }
}

/// The table resolved: what every table command works from.
pub struct Target {
    /// For the command's further sessions (copy workers, replay, the governor).
    pub conn: ConnSpec,
    /// `--table` as the user typed it.
    pub table: String,
    pub state: State,
    pub oid: Oid,
    /// The session that resolved the table; the command's control session.
    pub client: Client,
}

impl Target {
    /// Whether the state schema exists (see [`Session::state_exists`]).
    pub async fn state_exists(&self) -> Result<bool> {
        self.state.exists(&self.client).await
    }
}
