//! Low-traffic windows (`--window "Mon-Fri 01:00-05:00 Europe/Berlin"`): parsing, and deciding
//! from a local wall-clock time whether a window is open, until when, or when it next opens.
//!
//! The local time comes from the server (`now() AT TIME ZONE tz`, see `governor`), so every
//! time zone PostgreSQL knows works and no time-zone database is bundled here. This module is
//! pure arithmetic on local seconds since 1970-01-01 00:00 (a Thursday), which keeps it testable
//! with any clock. A window that ends at or before its start runs past midnight
//! (`22:00-06:00`); its days are the days it opens on.

use std::fmt;

/// Seconds in a day.
const DAY: i64 = 86_400;

/// One `--window`: days of the week it opens on, start and end (seconds after midnight), time zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// Bit `d` set (d = 1 Monday ... 7 Sunday) when the window opens on that day.
    days: u8,
    start: i64,
    end: i64,
    /// As the user wrote it; `None` means the server's time zone.
    pub tz: Option<String>,
    text: String,
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const FULL_DAY_NAMES: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];
const ALL_DAYS: u8 = 0b1111_1110;

/// What a set of windows says about one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Open now; closes in this many seconds (the end of the open window reaching furthest).
    Open { closes_in: i64 },
    /// Closed; the earliest opening is this many seconds away (None: never, no days set).
    Closed { opens_in: Option<i64> },
}

impl Window {
    /// Parses `[DAYS ]HH:MM-HH:MM[ TZ]`. DAYS is a comma-separated list of day names or ranges
    /// (`Mon-Fri`, `Sat,Sun`, `Mon,Wed-Fri`), or `daily`; TZ is any time zone PostgreSQL
    /// knows (checked against the server before the run starts).
    pub fn parse(text: &str) -> Result<Window, String> {
        let tokens: Vec<&str> = text.split_whitespace().collect();
        let bad = |why: &str| {
            format!(
                "--window {text:?}: {why}; expected [DAYS ]HH:MM-HH:MM[ TIMEZONE], e.g. \"Mon-Fri 01:00-05:00 Europe/Berlin\""
            )
        };
        let at = tokens
            .iter()
            .position(|t| t.contains(':'))
            .ok_or_else(|| bad("no time range"))?;
        if at > 1 || tokens.len() > at + 2 {
            return Err(bad("unexpected words"));
        }
        let days = match at {
            1 => parse_days(tokens[0]).map_err(|e| bad(&e))?,
            _ => ALL_DAYS,
        };
        let (s, e) = tokens[at]
            .split_once('-')
            .ok_or_else(|| bad("the time range needs a '-'"))?;
        let start = parse_clock(s).map_err(|e| bad(&e))?;
        let end = parse_clock(e).map_err(|e| bad(&e))?;
        if start == DAY {
            return Err(bad("a window cannot start at 24:00"));
        }
        if start == end {
            return Err(bad(
                "the window is empty (start equals end); use 00:00-24:00 for all day",
            ));
        }
        let tz = tokens.get(at + 1).map(|t| t.to_string());
        if let Some(tz) = &tz {
            if tz.len() > 64
                || !tz
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/_+-:".contains(c))
            {
                return Err(bad("the time zone has characters no time zone name has"));
            }
        }
        Ok(Window {
            days,
            start,
            end,
            tz,
            text: tokens.join(" "),
        })
    }

    fn opens_on(&self, day: i64) -> bool {
        self.days & (1 << iso_weekday(day)) != 0
    }

    /// Length of one opening in seconds (past midnight when end <= start).
    fn length(&self) -> i64 {
        if self.end > self.start {
            self.end - self.start
        } else {
            self.end + DAY - self.start
        }
    }

    /// For local time `now` (seconds since 1970-01-01 00:00 local): Some(seconds until it
    /// closes) when open.
    pub fn open_for(&self, now: i64) -> Option<i64> {
        let today = now.div_euclid(DAY);
        // An opening that started yesterday may still be running past midnight.
        for day in [today - 1, today] {
            if !self.opens_on(day) {
                continue;
            }
            let from = day * DAY + self.start;
            let to = from + self.length();
            if from <= now && now < to {
                return Some(to - now);
            }
        }
        None
    }

    /// Seconds from `now` until the next opening (within the coming 8 days).
    pub fn opens_in(&self, now: i64) -> Option<i64> {
        let today = now.div_euclid(DAY);
        (today..=today + 8)
            .filter(|d| self.opens_on(*d))
            .map(|d| d * DAY + self.start - now)
            .find(|s| *s > 0)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)?;
        if self.tz.is_none() {
            f.write_str(" (server time zone)")?;
        }
        Ok(())
    }
}

/// The verdict of several windows at once, each with its local time now.
pub fn verdict<'a>(windows: impl IntoIterator<Item = (&'a Window, i64)>) -> Verdict {
    let mut closes_in: Option<i64> = None;
    let mut opens_in: Option<i64> = None;
    for (w, now) in windows {
        if let Some(c) = w.open_for(now) {
            closes_in = Some(closes_in.map_or(c, |x| x.max(c)));
        } else if let Some(o) = w.opens_in(now) {
            opens_in = Some(opens_in.map_or(o, |x| x.min(o)));
        }
    }
    match closes_in {
        Some(c) => Verdict::Open { closes_in: c },
        None => Verdict::Closed { opens_in },
    }
}

/// ISO weekday (1 Monday ... 7 Sunday) of a day number counted from 1970-01-01 (a Thursday).
fn iso_weekday(day: i64) -> u8 {
    ((day + 3).rem_euclid(7) + 1) as u8
}

fn parse_clock(s: &str) -> Result<i64, String> {
    let (h, m) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not HH:MM"))?;
    let h: i64 = h.parse().map_err(|_| format!("{s:?} is not HH:MM"))?;
    let m: i64 = m.parse().map_err(|_| format!("{s:?} is not HH:MM"))?;
    if !(0..=24).contains(&h) || !(0..60).contains(&m) || (h == 24 && m != 0) {
        return Err(format!("{s:?} is not a time of day"));
    }
    Ok(h * 3600 + m * 60)
}

fn parse_days(s: &str) -> Result<u8, String> {
    if s.eq_ignore_ascii_case("daily") {
        return Ok(ALL_DAYS);
    }
    let day = |name: &str| -> Result<u8, String> {
        let lower = name.to_ascii_lowercase();
        DAY_NAMES
            .iter()
            .zip(FULL_DAY_NAMES)
            .position(|(short, full)| lower == *short || lower == full)
            .map(|i| i as u8 + 1)
            .ok_or_else(|| format!("{name:?} is not a day of the week"))
    };
    let mut bits = 0u8;
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                let mut d = a;
                loop {
                    bits |= 1 << d;
                    if d == b {
                        break;
                    }
                    d = d % 7 + 1;
                }
            }
            None => bits |= 1 << day(part)?,
        }
    }
    Ok(bits)
}

/// "3 h 12 min", "45 s": a wait for people.
pub fn human_secs(secs: i64) -> String {
    let s = secs.max(0);
    if s >= 3600 {
        format!("{} h {} min", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{s} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Local seconds of 2026-11-23 (a Monday) at hh:mm, plus `days`.
    fn monday(days: i64, hh: i64, mm: i64) -> i64 {
        // 2026-11-23 is day 20780 since 1970-01-01.
        (20_780 + days) * DAY + hh * 3600 + mm * 60
    }

    #[test]
    fn the_reference_day_is_a_monday() {
        assert_eq!(iso_weekday(20_780), 1);
        assert_eq!(iso_weekday(0), 4, "1970-01-01 was a Thursday");
    }

    #[test]
    fn parses_the_documented_forms() {
        let w = Window::parse("01:00-05:00").unwrap();
        assert_eq!(
            (w.start, w.end, w.days, w.tz.clone()),
            (3600, 5 * 3600, ALL_DAYS, None)
        );
        let w = Window::parse("Mon-Fri 22:00-06:00 Europe/Berlin").unwrap();
        assert_eq!(w.days, 0b0011_1110);
        assert_eq!(w.tz.as_deref(), Some("Europe/Berlin"));
        let w = Window::parse("sat,Sun 00:00-24:00 UTC").unwrap();
        assert_eq!(w.days, 0b1100_0000);
        assert_eq!(w.length(), DAY);
        assert_eq!(
            Window::parse("Fri-Mon 01:00-02:00").unwrap().days,
            0b1110_0010
        );
        assert_eq!(Window::parse("Monday 01:00-02:00").unwrap().days, 0b10);
        for bad in [
            "",
            "01:00",
            "25:00-26:00",
            "01:00-01:00",
            "Mon-Frx 01:00-02:00",
            "01:00-02:00 UTC extra",
            "Mon Tue 01:00-02:00",
            "01:00-02:00 x';DROP",
            "24:00-01:00",
            "1:61-2:00",
        ] {
            assert!(Window::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn open_and_closed_through_a_day() {
        let w = Window::parse("01:00-05:00").unwrap();
        assert_eq!(w.open_for(monday(0, 0, 59)), None);
        assert_eq!(w.opens_in(monday(0, 0, 59)), Some(60));
        assert_eq!(w.open_for(monday(0, 1, 0)), Some(4 * 3600));
        assert_eq!(w.open_for(monday(0, 4, 59)), Some(60));
        assert_eq!(w.open_for(monday(0, 5, 0)), None);
        assert_eq!(w.opens_in(monday(0, 5, 0)), Some(20 * 3600));
    }

    #[test]
    fn overnight_windows_belong_to_the_day_they_open() {
        let w = Window::parse("Fri 22:00-06:00").unwrap();
        // Friday 23:00 and Saturday 05:00 are inside; Monday 05:00 is not (Sunday is not a day).
        assert_eq!(w.open_for(monday(4, 23, 0)), Some(7 * 3600));
        assert_eq!(w.open_for(monday(5, 5, 0)), Some(3600));
        assert_eq!(w.open_for(monday(0, 5, 0)), None);
        // From Monday noon the next opening is Friday 22:00.
        assert_eq!(w.opens_in(monday(0, 12, 0)), Some(4 * DAY + 10 * 3600));
    }

    #[test]
    fn several_windows_combine() {
        let a = Window::parse("01:00-02:00").unwrap();
        let b = Window::parse("01:30-04:00").unwrap();
        let ws = [a, b];
        assert_eq!(
            verdict(ws.iter().map(|w| (w, monday(0, 1, 45)))),
            Verdict::Open {
                closes_in: 2 * 3600 + 15 * 60
            }
        );
        assert_eq!(
            verdict(ws.iter().map(|w| (w, monday(0, 0, 0)))),
            Verdict::Closed {
                opens_in: Some(3600)
            }
        );
    }

    #[test]
    fn waits_read_well() {
        assert_eq!(human_secs(45), "45 s");
        assert_eq!(human_secs(125), "2 min 5 s");
        assert_eq!(human_secs(3 * 3600 + 12 * 60), "3 h 12 min");
    }
}
