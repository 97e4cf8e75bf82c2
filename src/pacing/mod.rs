//! Pacing of a running run: the `governor` (pause, throttles, lag, windows, the operator's
//! requests), low-traffic `window`s, and the read `probe` that measures what the run costs the
//! application.

pub mod governor;
pub mod hooks;
pub mod metrics;
pub mod probe;
pub mod window;
