//! What the operator sees: one line per event or JSON lines (`ui`), and the live progress
//! (`progress`). Results go to stdout; everything here writes to stderr.

pub mod progress;
pub mod ui;
