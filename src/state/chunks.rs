//! The `chunks` table: one row per chunk of the copy (its predicate and its range as two ends),
//! marked done with its rows, bytes and duration.
//!
//! Invariant kept here: a chunk is marked done in the same transaction that commits its rows
//! into the shadow (the caller's, passed to [`State::mark_chunks_done`]), and only if no one
//! marked it before, so a chunk is never copied twice.

use super::State;
use crate::error::{DbContext, Result, RowExt};
use tokio_postgres::{Client, GenericClient};

/// A chunk as recorded: its number, its predicate over the source's key, and its range as its
/// two ends (`ARRAY[lower, upper]`, None elements for open ends; None when not known).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkRecord {
    pub no: i32,
    pub predicate: String,
    pub bounds: Option<Vec<Option<String>>>,
}

/// What the copy did over the whole run (also what earlier processes did before they stopped).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CopyTotals {
    pub chunks: i64,
    pub rows: i64,
    pub bytes: i64,
}

/// A unit of chunks the copy committed: its chunks `nos`, the first of them `unit`, and what
/// the unit copied.
#[derive(Clone, Copy, Debug)]
pub struct UnitDone<'a> {
    pub unit: i32,
    pub nos: &'a [i32],
    pub rows: i64,
    pub bytes: i64,
    pub duration_ms: f64,
}

impl State {
    /// Records the planned chunks (not yet done) for the run, in one transaction; chunks
    /// already recorded are kept as they are.
    pub async fn record_chunks(
        &self,
        client: &mut Client,
        run: i64,
        chunks: &[ChunkRecord],
    ) -> Result<()> {
        let tx = client.transaction().await.ctx("recording chunks")?;
        let stmt = tx
            .prepare(&format!(
                "INSERT INTO {} (run_id, chunk_no, predicate, bounds) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                self.table("chunks")
            ))
            .await
            .ctx("recording chunks")?;
        for c in chunks {
            tx.execute(&stmt, &[&run, &c.no, &c.predicate, &c.bounds])
                .await
                .ctx("recording a chunk")?;
        }
        tx.commit().await.ctx("recording chunks")?;
        Ok(())
    }

    /// The chunks of the run not yet done, in order.
    pub async fn pending_chunks(
        &self,
        client: &impl GenericClient,
        run: i64,
    ) -> Result<Vec<ChunkRecord>> {
        let rows = client
            .query(
                &format!(
                    "SELECT chunk_no, predicate, bounds FROM {} WHERE run_id = $1 AND done_at IS NULL ORDER BY chunk_no",
                    self.table("chunks")
                ),
                &[&run],
            )
            .await
            .ctx("reading pending chunks")?;
        let what = format_args!("reading the pending chunks of run {run}");
        rows.iter()
            .map(|r| {
                Ok(ChunkRecord {
                    no: r.col(0, &what)?,
                    predicate: r.col(1, &what)?,
                    bounds: r.col(2, &what)?,
                })
            })
            .collect()
    }

    /// Marks the chunks of `done` copied, in the caller's transaction `tx` (the one that wrote
    /// their rows), with one clock reading for all of them; the unit's first chunk holds its
    /// rows, bytes and duration. Returns how many were marked: fewer than `done.nos` means
    /// someone else marked some first (the caller rolls back). `what` names the copy for errors.
    pub async fn mark_chunks_done(
        &self,
        tx: &impl GenericClient,
        run: i64,
        done: &UnitDone<'_>,
        what: &str,
    ) -> Result<u64> {
        // One clock reading for the whole unit (an uncorrelated subquery runs once).
        tx.execute(
            &format!(
                "UPDATE {} SET unit = $2, \
                        rows = CASE WHEN chunk_no = $2 THEN $4::int8 END, \
                        bytes = CASE WHEN chunk_no = $2 THEN $5::int8 END, \
                        duration_ms = CASE WHEN chunk_no = $2 THEN $6::float8 END, \
                        done_at = (SELECT clock_timestamp()) \
                  WHERE run_id = $1 AND chunk_no = ANY($3) AND done_at IS NULL",
                self.table("chunks")
            ),
            &[
                &run,
                &done.unit,
                &done.nos,
                &done.rows,
                &done.bytes,
                &done.duration_ms,
            ],
        )
        .await
        .ctx(what)
    }

    /// How many chunks the run has, done or not.
    pub async fn chunk_count(&self, client: &impl GenericClient, run: i64) -> Result<i64> {
        client
            .query_one(
                &format!(
                    "SELECT count(*) FROM {} WHERE run_id = $1",
                    self.table("chunks")
                ),
                &[&run],
            )
            .await
            .ctx("counting chunks")?
            .col(0, &"counting chunks")
    }

    /// The predicates of all the run's chunks, in order (what verification compares).
    pub async fn chunk_predicates(
        &self,
        client: &impl GenericClient,
        run: i64,
    ) -> Result<Vec<String>> {
        client
            .query(
                &format!(
                    "SELECT predicate FROM {} WHERE run_id = $1 ORDER BY chunk_no",
                    self.table("chunks")
                ),
                &[&run],
            )
            .await
            .ctx("reading the chunks to verify")?
            .iter()
            .map(|r| r.col(0, &"reading the chunks to verify"))
            .collect()
    }

    /// The copy's totals over the whole run.
    pub async fn copy_totals(&self, client: &impl GenericClient, run: i64) -> Result<CopyTotals> {
        let what = "reading the copy totals";
        let row = client
            .query_one(
                &format!(
                    "SELECT count(*), COALESCE(sum(rows), 0)::int8, COALESCE(sum(bytes), 0)::int8 FROM {} WHERE run_id = $1",
                    self.table("chunks")
                ),
                &[&run],
            )
            .await
            .ctx(what)?;
        Ok(CopyTotals {
            chunks: row.col(0, &what)?,
            rows: row.col(1, &what)?,
            bytes: row.col(2, &what)?,
        })
    }
}
