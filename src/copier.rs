//! The bulk copy: N workers, each with a connection that reads and one that writes, stream
//! `COPY (SELECT <mapping> ...) TO STDOUT (FORMAT binary)` into `COPY <shadow> FROM STDIN
//! (FORMAT binary)` without decoding a row.
//!
//! Invariant kept here (DESIGN.md, phase 4): each chunk is its own short transaction on the
//! writing side, and the chunk is marked done in `chunks` inside that same transaction, so a
//! crash loses at most the chunks in flight and a resumed run never copies a chunk twice. The
//! reading side runs each COPY as a single statement (its own snapshot, released at once), so
//! no snapshot is held across the copy and vacuum is never held back. Memory is bounded: the
//! bytes of one COPY message are in flight per worker, with backpressure from the writer.

use crate::chunks::Chunk;
use crate::conn::{self, ConnSpec};
use crate::error::{DbContext, Error, Result};
use crate::governor::Governor;
use crate::plan::Plan;
use crate::state::State;
use bytes::Bytes;
use futures_util::{pin_mut, SinkExt, StreamExt};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio_postgres::Client;

/// Counters shared by the workers and the progress reporter.
#[derive(Default, Debug)]
pub struct Progress {
    pub rows: AtomicU64,
    pub bytes: AtomicU64,
    pub chunks_done: AtomicU64,
}

/// The two COPY statements that move the source rows selected by `filter` (a `WHERE ...` or
/// `TABLESAMPLE ...` clause, or nothing) through the mapping into the shadow: (read, write).
pub fn copy_statements(plan: &Plan, filter: &str) -> (String, String) {
    let cols = crate::ident::join_idents(plan.copy_columns());
    (
        format!(
            "COPY (SELECT {} FROM ONLY {} {filter}) TO STDOUT (FORMAT binary)",
            plan.select_list(),
            plan.source
        ),
        format!("COPY {} ({cols}) FROM STDIN (FORMAT binary)", plan.shadow),
    )
}

/// Streams the bytes of a `COPY ... TO STDOUT` into a `COPY ... FROM STDIN` without decoding
/// them, and finishes the COPY. Returns (rows, bytes). Used by the copy and by `plan`'s sample,
/// so the estimate measures exactly this.
///
/// `feed`, not `send`: COPY TO STDOUT sends one message per row, and `send` would flush each
/// one on its own (a syscall and a network write per row; the benchmark saw the client's CPU and
/// both backends waiting on it). `feed` lets the sink batch them into its buffer, still with
/// backpressure, and `finish` flushes the rest.
pub async fn forward(
    stream: tokio_postgres::CopyOutStream,
    sink: tokio_postgres::CopyInSink<Bytes>,
) -> std::result::Result<(u64, u64), tokio_postgres::Error> {
    pin_mut!(sink);
    pin_mut!(stream);
    let mut bytes = 0u64;
    while let Some(data) = stream.next().await {
        let data = data?;
        bytes += data.len() as u64;
        sink.feed(data).await?;
    }
    let rows = sink.finish().await?;
    Ok((rows, bytes))
}

/// Records the planned chunks (not yet done) for the run.
pub async fn record_chunks(
    client: &mut Client,
    state: &State,
    run: i64,
    chunks: &[Chunk],
) -> Result<()> {
    let tx = client.transaction().await.ctx("recording chunks")?;
    let stmt = tx
        .prepare(&format!(
            "INSERT INTO {} (run_id, chunk_no, predicate) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            state.table("chunks")
        ))
        .await
        .ctx("recording chunks")?;
    for c in chunks {
        tx.execute(&stmt, &[&run, &c.no, &c.predicate])
            .await
            .ctx("recording a chunk")?;
    }
    tx.commit().await.ctx("recording chunks")?;
    Ok(())
}

/// The chunks of the run not yet done, in order.
pub async fn pending_chunks(client: &Client, state: &State, run: i64) -> Result<Vec<Chunk>> {
    let rows = client
        .query(
            &format!(
                "SELECT chunk_no, predicate FROM {} WHERE run_id = $1 AND done_at IS NULL ORDER BY chunk_no",
                state.table("chunks")
            ),
            &[&run],
        )
        .await
        .ctx("reading pending chunks")?;
    Ok(rows
        .iter()
        .map(|r| Chunk {
            no: r.get(0),
            predicate: r.get(1),
        })
        .collect())
}

/// Copies every chunk in `chunks` with `jobs` workers. Stops at the first error (the other
/// workers finish or roll back their chunk in flight) and returns it.
#[allow(clippy::too_many_arguments)]
pub async fn copy_all(
    spec: &ConnSpec,
    policy: &crate::locking::LockPolicy,
    state: &State,
    plan: &Plan,
    chunks: Vec<Chunk>,
    jobs: usize,
    progress: Arc<Progress>,
    gov: &Governor,
) -> Result<()> {
    let (tx, rx) = crossbeam_channel::unbounded();
    for c in chunks {
        tx.send(c).expect("channel open");
    }
    drop(tx);
    let stop = Arc::new(AtomicBool::new(false));
    let mut set = tokio::task::JoinSet::new();
    for w in 0..jobs.max(1) {
        let rx = rx.clone();
        let spec = spec.clone();
        let state = state.clone();
        let plan = plan.clone();
        let progress = progress.clone();
        let stop = stop.clone();
        let policy = policy.clone();
        let gov = gov.clone();
        set.spawn(async move {
            let result = worker(w, &spec, &policy, &state, &plan, rx, &progress, &stop, &gov).await;
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
    policy: &crate::locking::LockPolicy,
    state: &State,
    plan: &Plan,
    rx: crossbeam_channel::Receiver<Chunk>,
    progress: &Progress,
    stop: &AtomicBool,
    gov: &Governor,
) -> Result<()> {
    let reader = conn::connect(spec, &format!("copy-read-{n}")).await?;
    let mut writer = conn::connect(spec, &format!("copy-write-{n}")).await?;
    // A non-blocking take from the shared queue: workers never block the runtime.
    while let Ok(chunk) = rx.try_recv() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        // Pause, throttles, windows (issue 7): wait here, between chunks, never inside one.
        gov.copy_permit(plan.run_id).await?;
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let started = Instant::now();
        // A chunk waits at most lock_timeout for its locks (someone else's DDL may be queued on
        // the table); on a timeout its transaction rolled back, so back off and copy it again.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match copy_chunk(&reader, &mut writer, state, plan, &chunk, progress).await {
                Ok(_) => break,
                Err(e) if e.is_lock_timeout() && attempt < policy.attempts => {
                    tracing::info!(
                        chunk = chunk.no,
                        attempt,
                        "chunk waited too long for a lock, will retry"
                    );
                    tokio::time::sleep(policy.backoff(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
        gov.nice(started.elapsed()).await;
    }
    Ok(())
}

/// Copies one chunk and marks it done, in one transaction on the writing side.
pub async fn copy_chunk(
    reader: &Client,
    writer: &mut Client,
    state: &State,
    plan: &Plan,
    chunk: &Chunk,
    progress: &Progress,
) -> Result<(u64, u64)> {
    let started = Instant::now();
    let what = || {
        format!(
            "copying chunk {} of {} ({})",
            chunk.no,
            plan.source.human(),
            chunk.predicate
        )
    };
    let (out_sql, in_sql) = copy_statements(plan, &format!("WHERE {}", chunk.predicate));
    let tx = writer.transaction().await.ctx(what())?;
    let sink = tx.copy_in::<_, Bytes>(&in_sql).await.ctx(what())?;
    let stream = reader.copy_out(&out_sql).await.ctx(what())?;
    let (rows, bytes) = forward(stream, sink).await.ctx(what())?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let n = tx
        .execute(
            &format!(
                "UPDATE {} SET rows = $3, bytes = $4, duration_ms = $5, done_at = clock_timestamp() \
                  WHERE run_id = $1 AND chunk_no = $2 AND done_at IS NULL",
                state.table("chunks")
            ),
            &[&plan.run_id, &chunk.no, &(rows as i64), &(bytes as i64), &ms],
        )
        .await
        .ctx(what())?;
    if n != 1 {
        return Err(Error::failed(format!(
            "chunk {} of run {} was already marked done by someone else; refusing to copy it twice",
            chunk.no, plan.run_id
        )));
    }
    tx.commit().await.ctx(what())?;
    crate::failpoint::hit("copy-chunk");
    progress.rows.fetch_add(rows, Ordering::Relaxed);
    progress.bytes.fetch_add(bytes, Ordering::Relaxed);
    progress.chunks_done.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(chunk = chunk.no, rows, bytes, ms, "chunk copied");
    Ok((rows, bytes))
}
