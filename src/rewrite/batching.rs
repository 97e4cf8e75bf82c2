//! `--chunk-time`: how many consecutive planned chunks a copy worker takes into one transaction,
//! and the queue that hands them out.
//!
//! The chunks are planned fine-grained up front (`chunks`, `--chunk-rows`): they stay the unit of
//! resume and of verification. Each worker then copies a run of k consecutive pending chunks as
//! one key range in one transaction, and marks exactly those k chunks done in it (`copier`). k
//! adapts to what the worker measures: after each transaction, the seconds per chunk (a moving
//! average) say how many chunks fill `--chunk-time`. The first transaction takes one chunk; k
//! grows at most fourfold per transaction (a first quick chunk may be an almost empty one, or
//! cached), shrinks at once when transactions run long, and never exceeds `MAX_CHUNKS`. Near the
//! end a worker takes no more than its share of what is left, so the others are not left idle
//! while one copies the tail. With `--chunk-time off` every transaction is one chunk, as before.
//!
//! Invariant kept here: a unit handed out is a run of chunks with consecutive numbers and known
//! bounds (or a single chunk), and every pending chunk is handed out exactly once.

use crate::rewrite::chunks::Chunk;
use std::sync::Mutex;
use std::time::Duration;

/// Most chunks in one transaction: bounds the work a crash or a lock-timeout retry throws away
/// when a chunk's time was badly underestimated.
pub const MAX_CHUNKS: usize = 1024;
/// Most growth of k from one transaction to the next.
pub const GROWTH: usize = 4;
/// Weight of the newest transaction in the moving average of seconds per chunk.
const ALPHA: f64 = 0.5;

/// One worker's choice of k.
#[derive(Clone, Debug)]
pub struct Sizer {
    target: Option<Duration>,
    secs_per_chunk: Option<f64>,
    next: usize,
}

impl Sizer {
    /// `target`: the wanted time of one transaction; None copies one chunk per transaction.
    pub fn new(target: Option<Duration>) -> Sizer {
        Sizer {
            target,
            secs_per_chunk: None,
            next: 1,
        }
    }

    /// How many chunks the next transaction should take.
    pub fn next(&self) -> usize {
        self.next
    }

    /// Seconds per chunk measured so far (moving average), if any.
    pub fn secs_per_chunk(&self) -> Option<f64> {
        self.secs_per_chunk
    }

    /// Records a committed transaction of `chunks` chunks that took `elapsed`.
    pub fn record(&mut self, chunks: usize, elapsed: Duration) {
        let Some(target) = self.target else {
            return;
        };
        let chunks = chunks.max(1);
        let sample = elapsed.as_secs_f64() / chunks as f64;
        let spc = match self.secs_per_chunk {
            Some(prev) => ALPHA * sample + (1.0 - ALPHA) * prev,
            None => sample,
        };
        self.secs_per_chunk = Some(spc);
        let wanted = if spc > 1e-9 {
            (target.as_secs_f64() / spc).round()
        } else {
            f64::INFINITY
        };
        let cap = (chunks * GROWTH).min(MAX_CHUNKS);
        self.next = if wanted.is_finite() {
            (wanted as usize).clamp(1, cap)
        } else {
            cap
        };
    }
}

/// The pending chunks, in order, shared by the workers: each takes the next run of consecutive
/// chunks under a mutex (held only to move a cursor, never across an await).
#[derive(Debug)]
pub struct Queue {
    inner: Mutex<Cursor>,
    workers: usize,
}

#[derive(Debug)]
struct Cursor {
    chunks: Vec<Chunk>,
    next: usize,
}

impl Queue {
    /// `chunks` sorted by number (as `copier::pending_chunks` returns them).
    pub fn new(chunks: Vec<Chunk>, workers: usize) -> Queue {
        Queue {
            inner: Mutex::new(Cursor { chunks, next: 0 }),
            workers: workers.max(1),
        }
    }

    /// Chunks not handed out yet.
    pub fn remaining(&self) -> usize {
        let c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        c.chunks.len() - c.next
    }

    /// Up to `want` consecutive chunks (at least one while any is left; none when the queue is
    /// empty). A run ends at a gap in the numbers (chunks done before a resume), at a chunk
    /// without bounds, and at this worker's fair share of what is left.
    pub fn take(&self, want: usize) -> Vec<Chunk> {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let left = c.chunks.len() - c.next;
        if left == 0 {
            return Vec::new();
        }
        let limit = unit_limit(want, left, self.workers);
        let start = c.next;
        let mut end = start + 1;
        while end - start < limit && end < c.chunks.len() {
            let (prev, cur) = (&c.chunks[end - 1], &c.chunks[end]);
            if cur.no != prev.no + 1 || prev.bounds.is_none() || cur.bounds.is_none() {
                break;
            }
            end += 1;
        }
        c.next = end;
        c.chunks[start..end].to_vec()
    }
}

/// The most chunks a worker that wants `want` takes when `left` are left for `workers`: at least
/// one, at most `MAX_CHUNKS`, and no more than its fair share of what is left.
fn unit_limit(want: usize, left: usize, workers: usize) -> usize {
    want.clamp(1, MAX_CHUNKS)
        .min(left.div_ceil(workers.max(1)))
        .max(1)
}

/// How many copy transactions `chunks` pending chunks take on `jobs` workers when a chunk takes
/// `secs_per_chunk` on one worker: the sizer and the queue played out, for `plan`'s estimate and
/// listing. With no target, one transaction per chunk.
pub fn transactions(
    chunks: usize,
    secs_per_chunk: f64,
    target: Option<Duration>,
    jobs: usize,
) -> usize {
    if target.is_none() {
        return chunks;
    }
    let spc = if secs_per_chunk.is_finite() {
        secs_per_chunk.clamp(0.0, 1e6)
    } else {
        0.0
    };
    let jobs = jobs.max(1);
    let mut sizers = vec![Sizer::new(target); jobs];
    let mut free_at = vec![0.0f64; jobs];
    let (mut left, mut n) = (chunks, 0);
    while left > 0 {
        // The worker that is free first takes the next unit.
        let w = (0..jobs)
            .min_by(|a, b| free_at[*a].total_cmp(&free_at[*b]))
            .unwrap_or(0);
        let k = unit_limit(sizers[w].next(), left, jobs);
        left -= k;
        n += 1;
        let secs = k as f64 * spc;
        free_at[w] += secs;
        sizers[w].record(k, Duration::from_secs_f64(secs));
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewrite::chunks::integer_chunks;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn off_means_one_chunk_per_transaction() {
        let mut s = Sizer::new(None);
        assert_eq!(s.next(), 1);
        s.record(1, ms(1));
        assert_eq!(s.next(), 1);
    }

    #[test]
    fn k_grows_toward_the_target_at_most_fourfold() {
        let mut s = Sizer::new(Some(ms(2000)));
        assert_eq!(s.next(), 1, "the first transaction is one chunk");
        // 50 ms per chunk: 40 chunks fill 2 s, reached through 4, 16, 40.
        s.record(1, ms(50));
        assert_eq!(s.next(), 4);
        s.record(4, ms(200));
        assert_eq!(s.next(), 16);
        s.record(16, ms(800));
        assert_eq!(s.next(), 40);
        s.record(40, ms(2000));
        assert_eq!(s.next(), 40, "steady at the target");
    }

    #[test]
    fn k_shrinks_when_transactions_run_long() {
        let mut s = Sizer::new(Some(ms(2000)));
        s.record(1, ms(50));
        s.record(4, ms(200));
        s.record(16, ms(800));
        assert_eq!(s.next(), 40);
        // The rows got much wider: 40 chunks took 20 s (500 ms each). The average moves halfway
        // (275 ms per chunk), so k drops to 7 at once, then on toward 4 (2 s / 500 ms).
        s.record(40, ms(20_000));
        assert_eq!(s.next(), 7);
        s.record(7, ms(3500));
        assert_eq!(s.next(), 5);
        s.record(5, ms(2500));
        s.record(5, ms(2500));
        assert_eq!(s.next(), 4);
    }

    #[test]
    fn empty_or_instant_chunks_are_bounded() {
        let mut s = Sizer::new(Some(ms(2000)));
        s.record(1, Duration::ZERO);
        assert_eq!(s.next(), GROWTH);
        for _ in 0..20 {
            let k = s.next();
            s.record(k, Duration::ZERO);
        }
        assert_eq!(s.next(), MAX_CHUNKS);
        // A chunk slower than the whole target: still one chunk at a time.
        let mut s = Sizer::new(Some(ms(100)));
        s.record(1, ms(5000));
        assert_eq!(s.next(), 1);
    }

    #[test]
    fn transactions_play_the_sizer_out() {
        let t = Some(ms(2000));
        // Off: one per chunk.
        assert_eq!(transactions(100, 0.05, None, 2), 100);
        // One job, 50 ms a chunk: 1, 4, 16, then 40 at a time (2 s), the rest at the end.
        assert_eq!(transactions(21, 0.05, t, 1), 3);
        assert_eq!(transactions(21 + 400, 0.05, t, 1), 3 + 10);
        // Chunks slower than the target: one each.
        assert_eq!(transactions(50, 3.0, t, 2), 50);
        // Instant chunks: bounded by MAX_CHUNKS (and the shares of the tail).
        assert!(transactions(100_000, 0.0, t, 1) >= 100_000 / MAX_CHUNKS);
        assert_eq!(transactions(0, 0.05, t, 4), 0);
        // Two jobs: about twice the transactions of one for the same per-worker time.
        let one = transactions(10_000, 0.01, t, 1);
        let two = transactions(10_000, 0.01, t, 2);
        assert!(two > one && two <= 2 * one + 4, "{one} {two}");
    }

    #[test]
    fn queue_hands_out_each_chunk_once_in_runs() {
        let chunks = integer_chunks("k", 1, 1000, 10);
        let q = Queue::new(chunks.clone(), 1);
        let a = q.take(1);
        let b = q.take(4);
        let c = q.take(100);
        assert_eq!(q.take(5), Vec::new());
        assert_eq!(a.len(), 1);
        assert_eq!(b.len(), 4);
        assert_eq!(c.len(), 5);
        let all: Vec<Chunk> = [a, b, c].concat();
        assert_eq!(all, chunks);
    }

    #[test]
    fn queue_stops_runs_at_gaps_and_unknown_bounds() {
        let mut chunks = integer_chunks("k", 1, 1000, 10);
        chunks.remove(3); // done before a resume
        chunks[6].bounds = None; // chunk 7, recorded by an earlier version
        let q = Queue::new(chunks, 1);
        let no = |v: Vec<Chunk>| v.iter().map(|c| c.no).collect::<Vec<_>>();
        assert_eq!(no(q.take(100)), vec![0, 1, 2]);
        assert_eq!(no(q.take(100)), vec![4, 5, 6]);
        assert_eq!(no(q.take(100)), vec![7]);
        assert_eq!(no(q.take(100)), vec![8, 9]);
        assert_eq!(q.remaining(), 0);
    }

    #[test]
    fn queue_leaves_the_other_workers_their_share_of_the_tail() {
        let q = Queue::new(integer_chunks("k", 1, 1000, 10), 2);
        assert_eq!(q.take(100).len(), 5);
        assert_eq!(q.take(100).len(), 3);
        assert_eq!(q.take(100).len(), 1);
        assert_eq!(q.take(100).len(), 1);
        assert_eq!(q.take(100).len(), 0);
    }
}
