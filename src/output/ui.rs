//! Operator-facing output on stderr (results go to stdout): one timestamped line per event, or
//! one JSON object per line with `--log-format json` (the same shape as the `tracing` output:
//! `timestamp`, `level`, `message`, `target`, then the event's fields). `-q` silences the
//! progress lines, never errors. Diagnostics for developers go through `tracing` (`-v`,
//! `RUST_LOG`), written through [`StderrWriter`].
//!
//! Everything written to stderr goes through `progress` so that, on a terminal, lines appear
//! above the progress bar instead of garbling it.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

static QUIET: AtomicBool = AtomicBool::new(false);
static JSON: AtomicBool = AtomicBool::new(false);
/// stderr is a terminal: a short clock is enough there; logs kept in files get full timestamps.
static TTY: AtomicBool = AtomicBool::new(false);
/// Colour (ANSI escape codes) is allowed on stderr: see [`colour_wanted`].
static COLOUR: AtomicBool = AtomicBool::new(false);

/// `word` as one POSIX shell word, for the commands that messages suggest (`pg-hotswap abort
/// --table ...`): unchanged when the shell would read it as it is, quoted otherwise (a quoted
/// table name such as `"App"."Weird ""Name"" tbl"` loses its double quotes in a shell). Quoting
/// is the `shlex` crate's; a word it cannot quote (a NUL byte) is returned as it is.
pub fn shell_word(word: &str) -> String {
    shlex::try_quote(word)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| word.to_string())
}

pub fn set_quiet(q: bool) {
    QUIET.store(q, Ordering::Relaxed);
}

/// `--log-format json`.
pub fn set_json(json: bool) {
    JSON.store(json, Ordering::Relaxed);
}

pub fn is_json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Whether stderr is a terminal (decides the timestamp format of text lines).
pub fn set_terminal(tty: bool) {
    TTY.store(tty, Ordering::Relaxed);
}

/// Whether stderr may carry colour: only on a terminal, and not when `NO_COLOR` is set to a
/// non-empty value (<https://no-color.org>). A log written to a file or a pipe never carries an
/// escape code, whatever `NO_COLOR` says.
pub fn colour_wanted(tty: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    tty && !matches!(no_color, Some(v) if !v.is_empty())
}

/// Set once by the binary from [`colour_wanted`]; the progress bar and `tracing` follow it.
pub fn set_colour(colour: bool) {
    COLOUR.store(colour, Ordering::Relaxed);
}

pub fn colour() -> bool {
    COLOUR.load(Ordering::Relaxed)
}

fn now() -> (u64, u32) {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| (d.as_secs(), d.subsec_millis()))
        .unwrap_or((0, 0))
}

/// `HH:MM:SS` (UTC) of now.
pub fn clock() -> String {
    let day = now().0 % 86_400;
    format!("{:02}:{:02}:{:02}", day / 3600, (day % 3600) / 60, day % 60)
}

/// RFC 3339 in UTC with milliseconds: `2026-11-21T15:06:11.123Z`.
pub fn timestamp() -> String {
    let (secs, millis) = now();
    rfc3339(secs, millis)
}

fn rfc3339(secs: u64, millis: u32) -> String {
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let day = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        day / 3600,
        (day % 3600) / 60,
        day % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Prints one progress line to stderr (unless `-q`). A line starting with `warning: ` is a
/// warning (level WARN in JSON).
pub fn say(msg: &str) {
    say_with(msg, serde_json::Map::new());
}

/// [`say`] with structured fields, which only the JSON format shows (the text line already
/// says them in words).
pub fn say_with(msg: &str, fields: serde_json::Map<String, serde_json::Value>) {
    if QUIET.load(Ordering::Relaxed) {
        return;
    }
    match msg.strip_prefix("warning: ") {
        Some(w) => emit("WARN", msg, w, fields),
        None => emit("INFO", msg, msg, fields),
    }
}

/// Prints a failure: `error: <message>` with its state and next step, or one JSON object with
/// those as fields and the exit code. Never silenced by `-q`.
pub fn error(message: &str, state: Option<&str>, next: Option<&str>, exit_code: i32) {
    let mut text = format!("error: {message}");
    if let Some(s) = state {
        text.push_str(&format!("\n  state: {s}"));
    }
    if let Some(n) = next {
        text.push_str(&format!("\n  next:  {n}"));
    }
    if is_json() {
        let mut fields = serde_json::Map::new();
        if let Some(s) = state {
            fields.insert("state".into(), s.into());
        }
        if let Some(n) = next {
            fields.insert("next".into(), n.into());
        }
        fields.insert("exit_code".into(), exit_code.into());
        emit("ERROR", &text, message, fields);
    } else {
        // The message already says "error:"; no timestamp, as before.
        println(&text);
    }
}

/// The live progress bar while `progress` draws one: every line goes above it.
static BAR: Mutex<Option<indicatif::ProgressBar>> = Mutex::new(None);

/// Called by `progress` when it draws or removes its bar.
pub fn set_bar(bar: Option<indicatif::ProgressBar>) {
    *BAR.lock().unwrap_or_else(|e| e.into_inner()) = bar;
}

fn bar() -> Option<indicatif::ProgressBar> {
    BAR.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Prints a line to stderr, above the bar if there is one.
pub fn println(line: &str) {
    match bar() {
        Some(b) => b.println(line),
        None => eprintln!("{line}"),
    }
}

/// Runs `f` (which writes to stderr) with the bar hidden meanwhile.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    match bar() {
        Some(b) => b.suspend(f),
        None => f(),
    }
}

fn emit(
    level: &str,
    text: &str,
    message: &str,
    fields: serde_json::Map<String, serde_json::Value>,
) {
    let line = if is_json() {
        json_line(level, message, fields)
    } else if TTY.load(Ordering::Relaxed) {
        format!("{}  {text}", clock())
    } else {
        let (secs, _) = now();
        let full = rfc3339(secs, 0);
        // Seconds are enough in a text log: 2026-11-21T15:06:11Z.
        format!("{}Z  {text}", &full[..19])
    };
    println(&line);
}

fn json_line(
    level: &str,
    message: &str,
    fields: serde_json::Map<String, serde_json::Value>,
) -> String {
    // Written by hand to keep the order of tracing's JSON (timestamp, level, message, target),
    // then the fields; a field may not replace one of those four.
    let quote = |v: &str| serde_json::Value::from(v).to_string();
    let mut line = format!(
        "{{\"timestamp\":{},\"level\":{},\"message\":{},\"target\":\"pg_hotswap\"",
        quote(&timestamp()),
        quote(level),
        quote(message)
    );
    for (k, v) in fields {
        if !matches!(k.as_str(), "timestamp" | "level" | "message" | "target") {
            line.push_str(&format!(",{}:{v}", quote(&k)));
        }
    }
    line.push('}');
    line
}

/// The writer `tracing` uses: stderr, through the progress bar's lock (see module header).
#[derive(Clone, Copy, Debug, Default)]
pub struct StderrWriter;

impl Write for StderrWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // tracing writes one whole event per call.
        suspend(|| std::io::stderr().write_all(buf))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for StderrWriter {
    type Writer = StderrWriter;
    fn make_writer(&'a self) -> StderrWriter {
        StderrWriter
    }
}

/// Human byte counts: 1.5 MB, 640 MB, 2.1 GB.
pub fn bytes(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.1} GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1} MB", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1} kB", n / 1e3)
    } else {
        format!("{n} B")
    }
}

/// Human durations for estimates: 45 s, 12 min, 3.5 h.
pub fn duration(secs: f64) -> String {
    if secs < 90.0 {
        format!("{secs:.0} s")
    } else if secs < 5400.0 {
        format!("{:.0} min", secs / 60.0)
    } else {
        format!("{:.1} h", secs / 3600.0)
    }
}

/// Writes to standard output (the reports, `--output json`). A closed standard output (`| head
/// -1`) drops the rest instead of panicking as `print!` does; the command's outcome and exit
/// status are unchanged.
pub fn stdout(args: std::fmt::Arguments) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(args).and_then(|_| out.flush());
}

/// `print!` through [`stdout`].
macro_rules! out {
    ($($t:tt)*) => {
        $crate::output::ui::stdout(format_args!($($t)*))
    };
}

/// `println!` through [`stdout`].
macro_rules! outln {
    ($($t:tt)*) => {
        $crate::output::ui::stdout(format_args!("{}\n", format_args!($($t)*)))
    };
}
pub(crate) use {out, outln};

#[cfg(test)]
mod tests {
    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(super::colour_wanted(true, None));
        assert!(!super::colour_wanted(false, None), "a file gets no colour");
        assert!(!super::colour_wanted(true, Some(OsStr::new("1"))));
        // no-color.org: set to a non-empty value; an empty NO_COLOR is as if unset.
        assert!(super::colour_wanted(true, Some(OsStr::new(""))));
        assert!(!super::colour_wanted(false, Some(OsStr::new(""))));
    }

    #[test]
    fn table_names_become_one_shell_word() {
        assert_eq!(super::shell_word("public.orders"), "public.orders");
        assert_eq!(
            super::shell_word(r#""App"."Weird ""Name"" tbl""#),
            r#"'"App"."Weird ""Name"" tbl"'"#
        );
        assert_eq!(super::shell_word("it's"), r#""it's""#);
    }

    #[test]
    fn bytes_are_human() {
        assert_eq!(super::bytes(512), "512 B");
        assert_eq!(super::bytes(1_500_000), "1.5 MB");
        assert_eq!(super::bytes(2_100_000_000), "2.1 GB");
    }

    #[test]
    fn durations_are_human() {
        assert_eq!(super::duration(45.2), "45 s");
        assert_eq!(super::duration(720.0), "12 min");
        assert_eq!(super::duration(12_600.0), "3.5 h");
    }

    #[test]
    fn clock_has_fixed_shape() {
        let c = super::clock();
        assert_eq!(c.len(), 8);
        assert_eq!(&c[2..3], ":");
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(super::rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (a leap day of a century leap year) 12:34:56.789
        assert_eq!(super::rfc3339(951_827_696, 789), "2000-02-29T12:34:56.789Z");
        assert_eq!(super::rfc3339(1_795_791_971, 5), "2026-11-27T15:06:11.005Z");
        assert_eq!(super::timestamp().len(), 24);
    }

    #[test]
    fn json_lines_carry_level_message_and_fields() {
        let mut f = serde_json::Map::new();
        f.insert("rows".into(), 5.into());
        f.insert("level".into(), "not allowed to override".into());
        let line = super::json_line("WARN", "slow \"quoted\"\n", f);
        assert!(line.starts_with("{\"timestamp\":"), "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["message"], "slow \"quoted\"\n");
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["rows"], 5);
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}
