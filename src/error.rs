//! The crate's error type: what went wrong, what state the database is left in, what to do next.
//!
//! Every error carries a [`Kind`] that decides the process exit status (documented in README.md),
//! a message naming the object and the cause, and optionally the state the database is left in
//! and the next step for the operator. Database errors keep their SQLSTATE so callers match on
//! codes (`SqlState::LOCK_NOT_AVAILABLE`), never on message text.

use std::fmt;
use std::sync::atomic::{AtomicI32, Ordering};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::FromSql;

/// What kind of failure this is; decides the exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Bad command-line input (exit 2).
    Usage,
    /// Refused at preflight: the table or the request is not supported; nothing was created (exit 3).
    Refused,
    /// The lock for the swap could not be taken within the allowed attempts (exit 4).
    LockTimeout,
    /// Cancelled by the operator (Ctrl-C, SIGTERM) (exit 130).
    Interrupted,
    /// Aborted on the operator's request from another client (`pg-hotswap abort`, or
    /// `control = 'abort'`); what the run created is removed (exit 5).
    Aborted,
    /// Anything else: the run failed, the database is consistent (exit 1).
    Failed,
}

impl Kind {
    pub fn exit_code(self) -> i32 {
        match self {
            Kind::Failed => 1,
            Kind::Usage => 2,
            Kind::Refused => 3,
            Kind::LockTimeout => 4,
            Kind::Aborted => 5,
            Kind::Interrupted => 130,
        }
    }
}

#[derive(Debug)]
pub struct Error {
    kind: Kind,
    message: String,
    state: Option<String>,
    next: Option<String>,
    code: Option<SqlState>,
    /// The session was lost (see [`Error::is_connection_lost`]); set where the driver's error
    /// is at hand, since a closed connection or a socket error carries no SQLSTATE.
    lost: bool,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            state: None,
            next: None,
            code: None,
            lost: false,
        }
    }

    pub fn usage(message: impl Into<String>) -> Error {
        Error::new(Kind::Usage, message)
    }

    pub fn refused(message: impl Into<String>) -> Error {
        Error::new(Kind::Refused, message)
    }

    pub fn failed(message: impl Into<String>) -> Error {
        Error::new(Kind::Failed, message)
    }

    /// A database error while doing `what` (a phrase naming the object: "creating the shadow
    /// table app.t_new"). Keeps the SQLSTATE and the server's detail and hint.
    pub fn db(what: impl fmt::Display, err: tokio_postgres::Error) -> Error {
        let code = err.code().cloned();
        let lost = driver_lost_connection(&err);
        let message = match err.as_db_error() {
            Some(db) => {
                let mut m = format!("{what}: {}", db.message());
                if let Some(d) = db.detail() {
                    m.push_str(&format!(" (detail: {d})"));
                }
                if let Some(h) = db.hint() {
                    m.push_str(&format!(" (hint: {h})"));
                }
                m
            }
            None => {
                let mut m = format!("{what}: {err}");
                let mut src = std::error::Error::source(&err);
                while let Some(s) = src {
                    m.push_str(&format!(": {s}"));
                    src = s.source();
                }
                m
            }
        };
        Error {
            kind: Kind::Failed,
            message,
            state: None,
            next: None,
            code,
            lost,
        }
    }

    /// A lock the tool asked for was not granted in time, found by the tool rather than by the
    /// server (a message of several lock statements that waited longer in all than
    /// `--lock-timeout`): carries SQLSTATE 55P03, so [`Error::is_lock_not_granted`] holds.
    pub fn lock_not_granted(message: impl Into<String>) -> Error {
        Error {
            code: Some(SqlState::LOCK_NOT_AVAILABLE),
            ..Error::failed(message)
        }
    }

    pub fn with_kind(mut self, kind: Kind) -> Error {
        self.kind = kind;
        self
    }

    /// The state the database is left in, for the operator.
    pub fn with_state(mut self, state: impl Into<String>) -> Error {
        self.state = Some(state.into());
        self
    }

    /// What the operator should do next.
    pub fn with_next(mut self, next: impl Into<String>) -> Error {
        self.next = Some(next.into());
        self
    }

    /// Adds state and next step only where none were set closer to the failure.
    pub fn or_state(mut self, state: impl Into<String>, next: impl Into<String>) -> Error {
        if self.state.is_none() {
            self.state = Some(state.into());
        }
        if self.next.is_none() {
            self.next = Some(next.into());
        }
        self
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn code(&self) -> Option<&SqlState> {
        self.code.as_ref()
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same error with its message rewritten by `f` (e.g. internal names replaced by the
    /// user's); kind, SQLSTATE, state and next are kept.
    pub fn map_message(mut self, f: impl FnOnce(String) -> String) -> Error {
        self.message = f(std::mem::take(&mut self.message));
        self
    }

    /// The state the database is left in, if said.
    pub fn state(&self) -> Option<&str> {
        self.state.as_deref()
    }

    /// The next step for the operator, if said.
    pub fn next(&self) -> Option<&str> {
        self.next.as_deref()
    }

    /// True when the server refused the data itself: a data exception (SQLSTATE class 22: a
    /// cast or an expression that fails for some row) or a constraint the rows break (class
    /// 23). Running again cannot help; the ALTER or a `--map` expression must change.
    pub fn is_data_error(&self) -> bool {
        self.code
            .as_ref()
            .map(|c| c.code().starts_with("22") || c.code().starts_with("23"))
            .unwrap_or(false)
    }

    /// True for PostgreSQL's "tuple concurrently updated" (or "deleted"): two sessions wrote the
    /// same catalog row at once, e.g. a `GRANT` (which takes no lock on the table) while the swap
    /// sets the new table's privileges. The transaction is lost but trying again works. It has
    /// no SQLSTATE of its own (XX000, internal error), so the message is read too: PostgreSQL's
    /// own words, the same in every supported version.
    pub fn is_concurrent_catalog_update(&self) -> bool {
        self.code.as_ref() == Some(&SqlState::INTERNAL_ERROR)
            && (self.message.ends_with("tuple concurrently updated")
                || self.message.ends_with("tuple concurrently deleted"))
    }

    /// True when PostgreSQL ended a lock wait as a deadlock (SQLSTATE 40P01).
    pub fn is_deadlock(&self) -> bool {
        self.code.as_ref() == Some(&SqlState::T_R_DEADLOCK_DETECTED)
    }

    /// True when a lock the statement waited for was not granted and its transaction was rolled
    /// back, so the attempt may be made again: `lock_timeout` expired (SQLSTATE 55P03), or
    /// PostgreSQL ended the wait as a deadlock (40P01). The second happens when `--lock-timeout`
    /// is longer than the server's `deadlock_timeout` (1 s by default) and an application
    /// transaction holds what the tool waits for while it waits for what the tool holds: the
    /// session whose wait reaches `deadlock_timeout` first is the one rolled back.
    pub fn is_lock_not_granted(&self) -> bool {
        matches!(
            self.code.as_ref(),
            Some(&SqlState::LOCK_NOT_AVAILABLE) | Some(&SqlState::T_R_DEADLOCK_DETECTED)
        )
    }

    /// True when a relation the statement named does not exist (SQLSTATE 42P01): a view or
    /// table the tool read was dropped since.
    pub fn is_undefined_relation(&self) -> bool {
        self.code.as_ref() == Some(&SqlState::UNDEFINED_TABLE)
    }

    /// True when the session this error came from is gone, but a new one may well work (issue
    /// 20): the backend was terminated or the server is shutting down or starting (SQLSTATE
    /// 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now), a connection
    /// exception (class 08), or the driver's connection closed or failed on the socket (no
    /// SQLSTATE then). Classified by SQLSTATE class and by the driver's error kind, never by
    /// message text. The unit of work that lost its session can be redone on a new one.
    pub fn is_connection_lost(&self) -> bool {
        self.lost
            || self
                .code
                .as_ref()
                .is_some_and(|c| sqlstate_means_lost(c.code()))
    }

    /// Appends `note` to the message (what was tried before giving up), keeping the rest.
    pub fn with_note(mut self, note: impl fmt::Display) -> Error {
        self.message = format!("{} ({note})", self.message);
        self
    }

    /// Drops the state and next step said closer to the failure, for an error that ends
    /// something larger than the step that said them (a reconnect's "nothing was changed"
    /// would misstate a run that gave up reconnecting).
    pub fn without_advice(mut self) -> Error {
        self.state = None;
        self.next = None;
        self
    }

    /// A terminated backend as the server reports it, for unit tests of the fault rule.
    #[cfg(test)]
    pub(crate) fn connection_lost_for_tests() -> Error {
        let mut e = Error::failed("terminating connection due to administrator command");
        e.code = Some(SqlState::ADMIN_SHUTDOWN);
        e
    }

    /// A lock timeout as the server reports it, for unit tests of the retry (`locking`).
    #[cfg(test)]
    pub(crate) fn lock_timeout_for_tests() -> Error {
        let mut e = Error::failed("canceling statement due to lock timeout");
        e.code = Some(SqlState::LOCK_NOT_AVAILABLE);
        e
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(s) = &self.state {
            write!(f, "\n  state: {s}")?;
        }
        if let Some(n) = &self.next {
            write!(f, "\n  next:  {n}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// SQLSTATEs after which the session is gone but the server may take a new one: class 08
/// (connection exception) and the operator-intervention codes that end a session (57P01
/// admin_shutdown: `pg_terminate_backend` or a fast shutdown; 57P02 crash_shutdown; 57P03
/// cannot_connect_now: the server is starting or promoting). 57014 (query_canceled) is not
/// one: a cancelled statement leaves the session usable and was meant.
fn sqlstate_means_lost(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
}

/// Whether the driver says the connection is gone: closed, or failed on the socket (an I/O
/// error anywhere in the chain: reset, broken pipe, refused while the server restarts).
fn driver_lost_connection(err: &tokio_postgres::Error) -> bool {
    if err.is_closed() {
        return true;
    }
    let mut src = std::error::Error::source(err);
    while let Some(s) = src {
        if s.downcast_ref::<std::io::Error>().is_some() {
            return true;
        }
        src = s.source();
    }
    false
}

/// Adds "what we were doing" to database results.
pub trait DbContext<T> {
    fn ctx(self, what: impl fmt::Display) -> Result<T>;
}

impl<T> DbContext<T> for std::result::Result<T, tokio_postgres::Error> {
    fn ctx(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Error::db(what, e))
    }
}

/// `server_version_num` of the server this process talks to, once read (0: not yet). Only for
/// error messages: a catalog row of an unexpected shape names the server's version.
static SERVER_VERSION: AtomicI32 = AtomicI32::new(0);

/// Records the server's `server_version_num` for error messages (see [`RowExt::col`]).
pub fn note_server_version(num: i32) {
    SERVER_VERSION.store(num, Ordering::Relaxed);
}

/// The `server_version_num` noted by [`note_server_version`], if any.
pub fn noted_server_version() -> Option<i32> {
    match SERVER_VERSION.load(Ordering::Relaxed) {
        0 => None,
        n => Some(n),
    }
}

/// `PostgreSQL 18.4`, or a phrase saying the version was not read.
pub fn server_version_label() -> String {
    match SERVER_VERSION.load(Ordering::Relaxed) {
        0 => "a server whose version was not read".to_string(),
        n => format!("PostgreSQL {}.{}", n / 10_000, n % 10_000),
    }
}

/// Typed, checked reads of result rows (issue 14): a column whose type or NULL-ness is not what
/// the code expects (a catalog that changed in a newer PostgreSQL: `attstattarget` became a
/// nullable `int2` in 17) becomes an [`Error`] naming the object read, the column, its server
/// type and the server's version, never a panic (`Row::get` panics, exit 101).
pub trait RowExt {
    /// Column `idx` as `T`; `what` names what the row describes ("the columns of table oid 16390").
    fn col<'a, T: FromSql<'a>>(&'a self, idx: usize, what: &dyn fmt::Display) -> Result<T>;
}

impl RowExt for tokio_postgres::Row {
    fn col<'a, T: FromSql<'a>>(&'a self, idx: usize, what: &dyn fmt::Display) -> Result<T> {
        self.try_get(idx).map_err(|e| {
            let column = match self.columns().get(idx) {
                Some(c) => format!("column {idx} ({} {})", c.name(), c.type_()),
                None => format!("column {idx} (absent: the row has {})", self.len()),
            };
            shape_error(what, &column, std::any::type_name::<T>(), &e)
        })
    }
}

/// The error for a row that does not have the shape the code reads.
fn shape_error(
    what: &dyn fmt::Display,
    column: &str,
    rust_type: &str,
    cause: &dyn std::error::Error,
) -> Error {
    let mut cause_text = cause.to_string();
    let mut src = cause.source();
    while let Some(s) = src {
        cause_text.push_str(&format!(": {s}"));
        src = s.source();
    }
    Error::failed(format!(
        "unexpected catalog shape on {} while {what}: {column} cannot be read as {rust_type} \
         ({cause_text})",
        server_version_label()
    ))
    .with_state("nothing was changed by this read")
    .with_next(
        "this PostgreSQL version's catalog differs from what pg-hotswap reads (PostgreSQL 15 to \
         18 are tested, see `pg-hotswap --version`); report it with this message",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_distinct_and_documented() {
        let codes: Vec<i32> = [
            Kind::Failed,
            Kind::Usage,
            Kind::Refused,
            Kind::LockTimeout,
            Kind::Aborted,
            Kind::Interrupted,
        ]
        .iter()
        .map(|k| k.exit_code())
        .collect();
        assert_eq!(codes, vec![1, 2, 3, 4, 5, 130]);
    }

    #[test]
    fn display_includes_state_and_next_step() {
        let e = Error::failed("copying chunk 3 of app.t failed: boom")
            .with_state("app.t is unchanged")
            .with_next("run `pg-hotswap abort --table app.t`");
        let s = e.to_string();
        assert!(s.contains("boom"));
        assert!(s.contains("state: app.t is unchanged"));
        assert!(s.contains("next:  run"));
    }

    #[test]
    fn data_errors_are_told_apart() {
        let mut e = Error::failed("x");
        assert!(!e.is_data_error());
        e.code = Some(SqlState::DIVISION_BY_ZERO);
        assert!(e.is_data_error());
        e.code = Some(SqlState::NOT_NULL_VIOLATION);
        assert!(e.is_data_error());
        e.code = Some(SqlState::LOCK_NOT_AVAILABLE);
        assert!(!e.is_data_error());
    }

    #[test]
    fn lost_connections_are_told_apart_by_sqlstate() {
        let mut e = Error::failed("x");
        assert!(!e.is_connection_lost());
        for (code, lost) in [
            (SqlState::ADMIN_SHUTDOWN, true),
            (SqlState::CRASH_SHUTDOWN, true),
            (SqlState::CANNOT_CONNECT_NOW, true),
            (SqlState::CONNECTION_FAILURE, true),
            (SqlState::CONNECTION_EXCEPTION, true),
            (SqlState::QUERY_CANCELED, false),
            (SqlState::LOCK_NOT_AVAILABLE, false),
            (SqlState::DIVISION_BY_ZERO, false),
            (SqlState::INVALID_PASSWORD, false),
        ] {
            e.code = Some(code.clone());
            assert_eq!(e.is_connection_lost(), lost, "{}", code.code());
        }
        assert!(Error::connection_lost_for_tests().is_connection_lost());
        let noted = Error::connection_lost_for_tests().with_note("gave up");
        assert!(noted.is_connection_lost() && noted.message().ends_with("(gave up)"));
    }

    #[test]
    fn or_state_keeps_the_more_specific_state() {
        let e = Error::failed("x")
            .with_state("inner")
            .or_state("outer", "n");
        assert!(e.to_string().contains("state: inner"));
        assert!(e.to_string().contains("next:  n"));
    }
}
