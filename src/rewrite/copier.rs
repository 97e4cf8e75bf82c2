//! The bulk copy: N workers, each with a connection that reads and one that writes, stream
//! `COPY (SELECT <mapping> ...) TO STDOUT (FORMAT binary)` into `COPY <shadow> FROM STDIN
//! (FORMAT binary)` without decoding a row.
//!
//! The unit of copy is a run of consecutive planned chunks (one chunk with `--chunk-time off`;
//! `batching` decides how many), read as one key range by one COPY.
//!
//! Invariant kept here (DESIGN.md, phase 4): each unit is its own short transaction on the
//! writing side, and every chunk it covers is marked done in `chunks` inside that same
//! transaction (exactly that many rows updated, or it rolls back), so a crash loses at most the
//! units in flight and a resumed run never copies a chunk twice. The reading side runs each COPY
//! as a single statement (its own snapshot, released at once), so no snapshot is held across the
//! copy and vacuum is never held back. Memory is bounded: the bytes of one COPY message are in
//! flight per worker, with backpressure from the writer.
//!
//! Every value arrives as stored (issue 21): a table with a column whose type does not survive
//! binary send/receive is copied in the text format instead ([`CopyForm`]). Measured on
//! PostgreSQL 15 over every built-in base type: only `xml` changes (`xml_send` drops an XML
//! declaration such as `<?xml version="1.0" encoding="UTF-8"?>`, and so does `xml_out`; the
//! `xml` -> `text` cast returns the stored string, and `xml_in` stores its input as given), and
//! `aclitem` has no binary form at all. Such a table is read with its `xml` columns (or domains
//! over it, arrays of them) cast to `text`/`text[]` and written by `COPY ... FROM STDIN` in the
//! text format, which parses them with `xml_in`: exactly the stored string. `xml` nested inside
//! a composite type still goes through `record_out` and loses its declaration (documented limit).
//! Every other table keeps the binary format (about 10% faster).
//!
//! `NOT VALID` domain constraints stay not enforced on legacy rows (issue 21, input 5): COPY
//! checks every domain constraint of every value it reads (`domain_recv`, `domain_in`), so a
//! column whose type holds a domain with a constraint that is not validated is copied by
//! `INSERT INTO <shadow> SELECT <mapping> FROM <source> WHERE <range>` instead — server side,
//! where a value that already has the domain's type is stored without a new check, as
//! PostgreSQL's own rewrite stores it. Slower than the COPY pipe, and only for such tables.

use crate::db::conn::{self, ConnSpec};
use crate::error::{DbContext, Error, Result};
use crate::pacing::governor::Governor;
use crate::rewrite::batching::{Queue, Sizer};
use crate::rewrite::chunks::{self, Bounds, Chunk};
use crate::rewrite::plan::Plan;
use crate::state::{ChunkRecord, State, UnitDone};
use bytes::Bytes;
use futures_util::{pin_mut, SinkExt, StreamExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

use crate::output::progress::CopyCounters;

/// The two COPY statements that move the source rows selected by `filter` (a `WHERE ...` or
/// `TABLESAMPLE ...` clause, or nothing) through the mapping into the shadow, in the binary
/// format: (read, write). See [`copy_statements_in`] for tables that need the text format.
pub fn copy_statements(plan: &Plan, filter: &str) -> (String, String) {
    copy_statements_in(plan, &CopyForm::binary(), filter)
}

/// [`copy_statements`] in the form `form` decided for the shadow.
pub fn copy_statements_in(plan: &Plan, form: &CopyForm, filter: &str) -> (String, String) {
    let cols = crate::db::ident::join_idents(plan.copy_columns());
    let exprs: Vec<String> = plan
        .columns
        .iter()
        .filter_map(|c| c.expr.as_deref().map(|e| (c, e)))
        .map(
            |(c, e)| match form.casts.iter().find(|(col, _)| col == &c.column) {
                Some((_, cast)) => format!("CAST(({e}) AS {})", cast.sql()),
                None => e.to_string(),
            },
        )
        .collect();
    let format = if form.text { "text" } else { "binary" };
    (
        format!(
            "COPY (SELECT {} FROM {} {filter}) TO STDOUT (FORMAT {format})",
            exprs.join(", "),
            plan.source_from()
        ),
        format!("COPY {} ({cols}) FROM STDIN (FORMAT {format})", plan.shadow),
    )
}

/// A cast applied to a column on the reading side of a text-format copy, so that its text is
/// the stored value rather than what the type's output function prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawCast {
    /// `xml` or a domain over it: `xml::text` is the stored string.
    Text,
    /// An array of `xml` (or of a domain over it): element by element, bounds kept.
    TextArray,
}

impl RawCast {
    fn sql(self) -> &'static str {
        match self {
            RawCast::Text => "pg_catalog.text",
            RawCast::TextArray => "pg_catalog.text[]",
        }
    }
}

/// The server-side copy of the rows `filter` selects (`WHERE ...`, or nothing) through the
/// mapping (see [`CopyForm::insert_select`]).
pub fn insert_select_statement(plan: &Plan, filter: &str) -> String {
    format!(
        "INSERT INTO {} ({}){} SELECT {} FROM {} {filter}",
        plan.shadow,
        crate::db::ident::join_idents(plan.copy_columns()),
        if plan.overriding {
            " OVERRIDING SYSTEM VALUE"
        } else {
            ""
        },
        plan.select_list(),
        plan.source_from()
    )
}

/// How the copy moves the rows of one shadow: the binary format, or the text format with casts
/// for the columns whose output function does not print the stored value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyForm {
    /// Text format: some column's type does not round-trip through binary send/receive.
    pub text: bool,
    /// Shadow columns read through a cast (only with `text`).
    pub casts: Vec<(crate::db::ident::Ident, RawCast)>,
    /// The columns that forced the text format, for the log.
    pub why: Vec<crate::db::ident::Ident>,
    /// Copy by `INSERT ... SELECT` on the server when not empty: these columns' types hold a
    /// domain with a constraint that is not validated (see the module comment).
    pub insert_select: Vec<crate::db::ident::Ident>,
}

impl CopyForm {
    pub fn binary() -> CopyForm {
        CopyForm::default()
    }
}

/// Types, looked up through domains, array elements, composite attributes, range subtypes and
/// multiranges' ranges, whose binary form does not give back the stored value: `xml`, and types
/// with no binary send or receive function. Per shadow column (by attribute of `shadow_oid`):
/// (column, contains such a type, the cast that reads it as stored, if any).
const FORM_SQL: &str = "\
WITH RECURSIVE walk(attname, typ, depth) AS ( \
    SELECT a.attname::text, a.atttypid, 0 FROM pg_catalog.pg_attribute a \
     WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped \
  UNION ALL \
    SELECT w.attname, n.next, w.depth + 1 \
      FROM walk w JOIN pg_catalog.pg_type t ON t.oid = w.typ \
      CROSS JOIN LATERAL ( \
            SELECT t.typbasetype WHERE t.typtype = 'd' \
        UNION ALL SELECT t.typelem WHERE t.typtype = 'b' AND t.typelem <> 0 AND t.typlen = -1 \
        UNION ALL SELECT a.atttypid FROM pg_catalog.pg_attribute a \
                   WHERE t.typtype = 'c' AND a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped \
        UNION ALL SELECT r.rngsubtype FROM pg_catalog.pg_range r WHERE t.typtype = 'r' AND r.rngtypid = t.oid \
        UNION ALL SELECT r.rngtypid FROM pg_catalog.pg_range r WHERE t.typtype = 'm' AND r.rngmultitypid = t.oid \
      ) n(next) \
     WHERE w.depth < 32 \
) \
SELECT w.attname, \
       bool_or(t.oid = 'pg_catalog.xml'::pg_catalog.regtype OR t.typsend = 0 OR t.typreceive = 0), \
       bool_or(EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.contypid = t.oid AND NOT c.convalidated)) \
  FROM walk w JOIN pg_catalog.pg_type t ON t.oid = w.typ \
 GROUP BY w.attname";

/// What `typ` is after looking through domains: (oid, array element type or 0).
async fn domain_base(
    client: &impl tokio_postgres::GenericClient,
    mut typ: u32,
) -> Result<(u32, u32)> {
    for _ in 0..32 {
        let row = client
            .query_one(
                "SELECT typtype::text, typbasetype, typelem, typlen FROM pg_catalog.pg_type WHERE oid = $1",
                &[&typ],
            )
            .await
            .ctx("reading a column type")?;
        let (kind, base, elem, len): (String, u32, u32, i16) = (
            row.try_get(0).ctx("reading a column type")?,
            row.try_get(1).ctx("reading a column type")?,
            row.try_get(2).ctx("reading a column type")?,
            row.try_get(3).ctx("reading a column type")?,
        );
        if kind == "d" {
            typ = base;
            continue;
        }
        let elem = if kind == "b" && len == -1 { elem } else { 0 };
        return Ok((typ, elem));
    }
    Err(Error::failed(format!(
        "type {typ} is a chain of more than 32 domains"
    )))
}

/// Decides the copy's form for the shadow of `plan` (see the module comment).
pub async fn copy_form(
    client: &impl tokio_postgres::GenericClient,
    plan: &Plan,
) -> Result<CopyForm> {
    const XML: u32 = 142;
    let what = || {
        format!(
            "checking how to copy the columns of {}",
            plan.shadow.human()
        )
    };
    let rows = client
        .query(FORM_SQL, &[&plan.shadow_oid])
        .await
        .ctx(what())?;
    let mut form = CopyForm::binary();
    for row in rows {
        let name: String = row.try_get(0).ctx(what())?;
        let needs_text: Option<bool> = row.try_get(1).ctx(what())?;
        let not_valid_domain: Option<bool> = row.try_get(2).ctx(what())?;
        let Some(col) = plan
            .copy_columns()
            .into_iter()
            .find(|c| c.as_str() == name)
            .cloned()
        else {
            continue;
        };
        if not_valid_domain == Some(true) {
            form.insert_select.push(col.clone());
        }
        if needs_text != Some(true) {
            continue;
        }
        form.text = true;
        form.why.push(col.clone());
        let typ: u32 = client
            .query_one(
                "SELECT atttypid FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attname = $2",
                &[&plan.shadow_oid, &name],
            )
            .await
            .ctx(what())?
            .try_get(0)
            .ctx(what())?;
        let (base, elem) = domain_base(client, typ).await?;
        if base == XML {
            form.casts.push((col, RawCast::Text));
        } else if elem != 0 && domain_base(client, elem).await?.0 == XML {
            form.casts.push((col, RawCast::TextArray));
        }
    }
    Ok(form)
}

/// Streams the bytes of a `COPY ... TO STDOUT` into a `COPY ... FROM STDIN` without decoding
/// them, and finishes the COPY. Returns (rows, bytes). Used by the copy and by `plan`'s sample,
/// so the estimate measures exactly this.
///
/// COPY TO STDOUT sends one message per row. The rows are gathered into [`FORWARD_BATCH`]-byte
/// messages (a COPY FROM STDIN stream is bytes; its messages need not end with a row), each
/// handed to the sink with `feed`: not `send`, which would flush every one on its own, and not
/// one row at a time, which costs the sink a buffer copy and the connection a channel message
/// per 4 kB. `finish` flushes the rest.
pub async fn forward(
    stream: tokio_postgres::CopyOutStream,
    sink: tokio_postgres::CopyInSink<Bytes>,
) -> std::result::Result<(u64, u64), tokio_postgres::Error> {
    pin_mut!(sink);
    pin_mut!(stream);
    let mut bytes = 0u64;
    let mut batch = bytes::BytesMut::with_capacity(FORWARD_BATCH);
    while let Some(data) = stream.next().await {
        let data = data?;
        bytes += data.len() as u64;
        batch.extend_from_slice(&data);
        if batch.len() >= FORWARD_BATCH {
            sink.feed(batch.split().freeze()).await?;
            batch.reserve(FORWARD_BATCH);
        }
    }
    if !batch.is_empty() {
        sink.feed(batch.freeze()).await?;
    }
    let rows = sink.finish().await?;
    Ok((rows, bytes))
}

/// Bytes gathered into one CopyData message by [`forward`]: 64 kB per copy stream. Against
/// feeding row by row, the client's CPU time for 2,000,000 rows fell from 0.72-0.82 s to
/// 0.59-0.60 s (docs/benchmarks.md, session 8).
const FORWARD_BATCH: usize = 64 * 1024;

/// Records the planned chunks (not yet done) for the run.
pub async fn record_chunks(
    client: &mut Client,
    state: &State,
    run: i64,
    chunks: &[Chunk],
) -> Result<()> {
    let records: Vec<ChunkRecord> = chunks
        .iter()
        .map(|c| ChunkRecord {
            no: c.no,
            predicate: c.predicate.clone(),
            bounds: c.bounds.as_ref().map(Bounds::to_array),
        })
        .collect();
    state.record_chunks(client, run, &records).await
}

/// The chunks of the run not yet done, in order.
pub async fn pending_chunks(client: &Client, state: &State, run: i64) -> Result<Vec<Chunk>> {
    Ok(state
        .pending_chunks(client, run)
        .await?
        .into_iter()
        .map(|c| Chunk {
            no: c.no,
            predicate: c.predicate,
            bounds: Bounds::from_array(c.bounds),
        })
        .collect())
}

/// Copies every chunk in `chunks` with `jobs` workers, each transaction taking about
/// `chunk_time` (None: one chunk per transaction). Stops at the first error (the other workers
/// finish or roll back their unit in flight) and returns it.
#[allow(clippy::too_many_arguments)]
pub async fn copy_all(
    spec: &ConnSpec,
    policy: &crate::db::locking::LockPolicy,
    state: &State,
    plan: &Plan,
    chunks: Vec<Chunk>,
    jobs: usize,
    chunk_time: Option<Duration>,
    progress: Arc<CopyCounters>,
    gov: &Governor,
) -> Result<()> {
    let queue = Arc::new(Queue::new(chunks, jobs.max(1)));
    let stop = Arc::new(AtomicBool::new(false));
    let mut set = tokio::task::JoinSet::new();
    for w in 0..jobs.max(1) {
        let queue = queue.clone();
        let spec = spec.clone();
        let state = state.clone();
        let plan = plan.clone();
        let progress = progress.clone();
        let stop = stop.clone();
        let policy = policy.clone();
        let gov = gov.clone();
        set.spawn(async move {
            let sizer = Sizer::new(chunk_time);
            let result = worker(
                w, &spec, &policy, &state, &plan, &queue, sizer, &progress, &stop, &gov,
            )
            .await;
            if result.is_err() {
                stop.store(true, Ordering::SeqCst);
            }
            result
        });
    }
    let mut first_err = None;
    while let Some(joined) = set.join_next().await {
        let r = joined.map_err(|e| Error::failed(format!("a copy worker panicked: {e}")))?;
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[allow(clippy::too_many_arguments)]
async fn worker(
    n: usize,
    spec: &ConnSpec,
    policy: &crate::db::locking::LockPolicy,
    state: &State,
    plan: &Plan,
    queue: &Queue,
    mut sizer: Sizer,
    progress: &CopyCounters,
    stop: &AtomicBool,
    gov: &Governor,
) -> Result<()> {
    let reader = conn::connect(spec, &format!("copy-read-{n}")).await?;
    let mut writer = conn::connect(spec, &format!("copy-write-{n}")).await?;
    let form = copy_form(&reader, plan).await?;
    if form.text {
        // The text form must read back what it printed. Both sessions connect alike, so they
        // share the role's and database's DateStyle, IntervalStyle and bytea_output, and what
        // one prints the other parses; those are left alone, because the mapping's own casts
        // (a date cast to text) run in the reading session and must print as PostgreSQL's
        // ALTER would under the same settings (found by a fresh tester: pinning DateStyle made
        // `d TYPE text` differ). Floats alone are pinned to their exact form: with
        // extra_float_digits below 1 they would not read back equal (a float cast to text in a
        // table copied this way then prints all digits: documented limit).
        for c in [&reader, &writer as &Client] {
            c.batch_execute("SET extra_float_digits = 3")
                .await
                .ctx("setting up a text-format copy")?;
        }
        if n == 0 {
            tracing::info!(
                columns = ?form.why.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
                "copying in the text format: these columns' types do not round-trip in binary"
            );
        }
    }
    if n == 0 && !form.insert_select.is_empty() {
        crate::output::ui::say(&format!(
            "copying by INSERT ... SELECT on the server: {} {} a domain whose constraint is NOT VALID, \
             and COPY would check it on the legacy rows",
            form.insert_select
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            if form.insert_select.len() == 1 { "holds" } else { "hold" }
        ));
    }
    // The next run of consecutive chunks from the shared queue (a cursor under a mutex; never
    // blocks the runtime), as many as fill --chunk-time by this worker's measure.
    loop {
        // Pause, throttles, windows (issue 7): wait here, between units, never inside one.
        gov.copy_permit(plan.run_id).await?;
        let unit = queue.take(sizer.next());
        if unit.is_empty() {
            break;
        }
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let unit_started = Instant::now();
        // A unit waits at most lock_timeout for its locks (someone else's DDL may be queued on
        // the table); on a timeout its transaction rolled back, so back off and copy it again.
        let what = format!(
            "copying chunks {} to {}",
            unit[0].no,
            unit[unit.len() - 1].no
        );
        let mut tries = crate::db::locking::Retry::new(policy, &what);
        loop {
            tries.start();
            let started = Instant::now();
            let r = copy_unit(&reader, &mut writer, state, plan, &form, &unit, progress).await;
            if tries.settle(r).await?.is_some() {
                sizer.record(unit.len(), started.elapsed());
                break;
            }
        }
        gov.nice(unit_started.elapsed()).await;
    }
    Ok(())
}

/// Copies a run of consecutive chunks (`batching::Queue::take`) as one key range, and marks
/// every one of them done, in one transaction on the writing side. The unit's rows, bytes and
/// time are recorded on its first chunk; `unit` names that first chunk on all of them.
pub async fn copy_unit(
    reader: &Client,
    writer: &mut Client,
    state: &State,
    plan: &Plan,
    form: &CopyForm,
    unit: &[Chunk],
    progress: &CopyCounters,
) -> Result<(u64, u64)> {
    let started = Instant::now();
    let (first, last) = match unit {
        [] => return Ok((0, 0)),
        [f, .., l] => (f, l),
        [f] => (f, f),
    };
    let predicate = chunks::covering_predicate(unit).ok_or_else(|| {
        Error::failed(format!(
            "internal error: chunks {}-{} of run {} are not one range",
            first.no, last.no, plan.run_id
        ))
    })?;
    let what = || {
        let which = if unit.len() == 1 {
            format!("chunk {}", first.no)
        } else {
            format!("chunks {}-{}", first.no, last.no)
        };
        format!("copying {which} of {} ({predicate})", plan.source.human())
    };
    let tx = writer.transaction().await.ctx(what())?;
    let (rows, bytes) = if form.insert_select.is_empty() {
        let (out_sql, in_sql) = copy_statements_in(plan, form, &format!("WHERE {predicate}"));
        let sink = tx.copy_in::<_, Bytes>(&in_sql).await.ctx(what())?;
        let stream = reader.copy_out(&out_sql).await.ctx(what())?;
        forward(stream, sink).await.ctx(what())?
    } else {
        let rows = tx
            .execute(
                &insert_select_statement(plan, &format!("WHERE {predicate}")),
                &[],
            )
            .await
            .ctx(what())?;
        (rows, 0)
    };
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let nos: Vec<i32> = unit.iter().map(|c| c.no).collect();
    let done = UnitDone {
        unit: first.no,
        nos: &nos,
        rows: rows as i64,
        bytes: bytes as i64,
        duration_ms: ms,
    };
    let n = state
        .mark_chunks_done(&tx, plan.run_id, &done, &what())
        .await?;
    if n != unit.len() as u64 {
        // Rolls back with the transaction: nothing of this unit is kept.
        return Err(Error::failed(format!(
            "{} of chunks {}-{} of run {} were already marked done by someone else; refusing to copy them twice",
            unit.len() as u64 - n,
            first.no,
            last.no,
            plan.run_id
        )));
    }
    crate::failpoint::hold("copy-unit").await;
    tx.commit().await.ctx(what())?;
    crate::failpoint::hit("copy-chunk");
    crate::failpoint::hold("copy-unit-committed").await;
    progress.rows.fetch_add(rows, Ordering::Relaxed);
    progress.bytes.fetch_add(bytes, Ordering::Relaxed);
    progress
        .chunks_done
        .fetch_add(unit.len() as u64, Ordering::Relaxed);
    tracing::debug!(
        chunk = first.no,
        chunks = unit.len(),
        rows,
        bytes,
        ms,
        "chunks copied"
    );
    Ok((rows, bytes))
}
