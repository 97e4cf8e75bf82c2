//! The one fault rule (issue 20): when a unit of work loses its session — a backend terminated by
//! an administrator (`pg_terminate_backend`), a pooler or proxy restart, a network blip, a server
//! restart — the unit is redone on a new session after a jittered backoff, up to a bound, instead
//! of ending the run. This module owns the bound and the backoff ([`FaultPolicy`]) and the count
//! of redos ([`FaultRetry`]); which errors qualify is decided by
//! [`Error::is_connection_lost`](crate::error::Error::is_connection_lost), by SQLSTATE class and
//! the driver's error kind, never by message text. It prints nothing (the db layer does not
//! import the output layer): the caller says each redo and records it.
//!
//! Invariant kept: only a lost session is redone; any other error ends the unit at once. A fault
//! that persists — more than `attempts` redos, each failing again within `settle` of the one
//! before — ends the unit with the last error, as before this rule existed (the run stays
//! resumable). A redo that then ran fault-free for `settle` starts the count again, so a run of
//! hours survives several unrelated blips.
//!
//! Why the redo is safe is the caller's business and is said where the unit is defined: a copy
//! unit commits its rows with its chunks' done marks (a redo reads which chunks are done), a
//! replay batch deletes exactly the log rows it read in its own transaction, the swap records
//! phase `finish` inside its transaction (a redo reads whether it committed).

use crate::error::Error;
use rand::Rng;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct FaultPolicy {
    /// How many redos in a row before giving up.
    pub attempts: u32,
    /// Base delay before a redo; doubles with each redo in a row (capped at 10 s), jittered.
    pub delay: Duration,
    /// A redo that ran this long without a fault ends the streak.
    pub settle: Duration,
}

impl Default for FaultPolicy {
    /// Five redos, from 0.5 s: a server restart or a failover of a proxy takes seconds, and the
    /// five backoffs (0.5, 1, 2, 4, 8 s, jittered) wait about 15 s in all before giving up.
    fn default() -> Self {
        FaultPolicy {
            attempts: 5,
            delay: Duration::from_millis(500),
            settle: Duration::from_secs(60),
        }
    }
}

impl FaultPolicy {
    /// The pause before redo `n` (1-based): delay * 2^(n-1), capped at 10 s, times a random factor
    /// in [0.5, 1.5), so the sessions of one run (and of other clients) do not reconnect in step.
    pub fn backoff(&self, n: u32) -> Duration {
        let exp = 1u32 << n.saturating_sub(1).min(5);
        let base = self.delay.saturating_mul(exp).min(Duration::from_secs(10));
        let jitter: f64 = rand::thread_rng().gen_range(0.5..1.5);
        base.mul_f64(jitter)
    }
}

/// What to do after a unit of work failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Redo it (after [`FaultRetry::back_off`]); the number of this redo in the current streak.
    Redo(u32),
    /// The session was lost, but too often in a row: give up with the error.
    GiveUp,
    /// Not a lost session: the error stands.
    NotAFault,
}

/// Counts the redos of one run (or one unit) under a [`FaultPolicy`].
#[derive(Debug)]
pub struct FaultRetry {
    policy: FaultPolicy,
    streak: u32,
    total: u32,
    last: Option<Instant>,
}

impl FaultRetry {
    pub fn new(policy: FaultPolicy) -> FaultRetry {
        FaultRetry {
            policy,
            streak: 0,
            total: 0,
            last: None,
        }
    }

    /// Decides after a unit failed with `e`, at `now`, and counts a redo when it says so.
    pub fn judge_at(&mut self, e: &Error, now: Instant) -> Verdict {
        if !e.is_connection_lost() {
            return Verdict::NotAFault;
        }
        if self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) >= self.policy.settle)
        {
            self.streak = 0;
        }
        if self.streak >= self.policy.attempts {
            return Verdict::GiveUp;
        }
        self.streak += 1;
        self.total += 1;
        self.last = Some(now);
        Verdict::Redo(self.streak)
    }

    /// [`FaultRetry::judge_at`] now.
    pub fn judge(&mut self, e: &Error) -> Verdict {
        self.judge_at(e, Instant::now())
    }

    /// Waits the backoff before the current redo.
    pub async fn back_off(&self) {
        tokio::time::sleep(self.policy.backoff(self.streak)).await;
    }

    /// Redos so far, over the whole run (for the report).
    pub fn total(&self) -> u32 {
        self.total
    }

    /// Redos in the current streak.
    pub fn streak(&self) -> u32 {
        self.streak
    }

    pub fn policy(&self) -> &FaultPolicy {
        &self.policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick() -> FaultPolicy {
        FaultPolicy {
            attempts: 3,
            delay: Duration::from_millis(1),
            settle: Duration::from_secs(60),
        }
    }

    #[test]
    fn only_a_lost_session_is_redone() {
        let mut r = FaultRetry::new(quick());
        assert_eq!(r.judge(&Error::failed("boom")), Verdict::NotAFault);
        assert_eq!(
            r.judge(&Error::lock_timeout_for_tests()),
            Verdict::NotAFault
        );
        assert_eq!(r.total(), 0);
        assert_eq!(
            r.judge(&Error::connection_lost_for_tests()),
            Verdict::Redo(1)
        );
        assert_eq!(r.total(), 1);
    }

    #[test]
    fn a_persistent_fault_gives_up_after_the_attempts() {
        let mut r = FaultRetry::new(quick());
        let lost = Error::connection_lost_for_tests();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(r.judge_at(&lost, at(0)), Verdict::Redo(1));
        assert_eq!(r.judge_at(&lost, at(1)), Verdict::Redo(2));
        assert_eq!(r.judge_at(&lost, at(2)), Verdict::Redo(3));
        assert_eq!(r.judge_at(&lost, at(3)), Verdict::GiveUp);
        assert_eq!(r.total(), 3);
    }

    #[test]
    fn a_quiet_stretch_starts_the_count_again() {
        let mut r = FaultRetry::new(quick());
        let lost = Error::connection_lost_for_tests();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        for (i, s) in [0, 1, 2].into_iter().enumerate() {
            assert_eq!(r.judge_at(&lost, at(s)), Verdict::Redo(i as u32 + 1));
        }
        // 60 s after the last redo without a fault: a new blip, a new streak.
        assert_eq!(r.judge_at(&lost, at(62)), Verdict::Redo(1));
        assert_eq!(r.total(), 4);
        assert_eq!(r.streak(), 1);
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let p = FaultPolicy::default();
        for _ in 0..50 {
            let d1 = p.backoff(1);
            assert!(d1 >= Duration::from_millis(250) && d1 < Duration::from_millis(750));
            let d3 = p.backoff(3);
            assert!(d3 >= Duration::from_millis(1000) && d3 < Duration::from_millis(3000));
            assert!(p.backoff(30) < Duration::from_secs(15));
        }
    }
}
