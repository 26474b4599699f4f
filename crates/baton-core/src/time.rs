//! Time: a millisecond [`Timestamp`] and the [`Clock`] every backend reads.
//!
//! Baton stores every instant as whole milliseconds since the Unix epoch (UTC).
//! One integer representation is what lets three backends agree bit for bit on
//! what `describe` returns: no backend's native time type (SQLite text,
//! Postgres `timestamptz` microseconds, Lua doubles) ever leaks into a snapshot.
//!
//! Backends never ask the operating system for the time themselves; they ask the
//! [`Clock`] they were built with. Tests hand them a [`ManualClock`] and move it
//! forward instead of sleeping.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::EngineError;

/// An instant in UTC with millisecond precision.
///
/// Its text form is RFC 3339 with exactly three fractional digits and a `Z`
/// suffix (`2026-11-23T12:00:00.000Z`); parsing also accepts other offsets and
/// fewer or more fractional digits (extra digits are truncated).
///
/// ```
/// use baton_core::Timestamp;
/// let t: Timestamp = "2026-11-23T12:00:00.250+01:00".parse().unwrap();
/// assert_eq!(t.to_string(), "2026-11-23T11:00:00.250Z");
/// assert_eq!(Timestamp::from_millis(t.as_millis()), t);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// Smallest instant Baton accepts: 1970-01-01T00:00:00Z.
const MIN_MS: i64 = 0;
/// Largest instant Baton accepts: 9999-12-31T23:59:59.999Z.
const MAX_MS: i64 = 253_402_300_799_999;

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// Builds a timestamp from milliseconds since the Unix epoch.
    ///
    /// Values outside year 1970..=9999 are clamped into that range, so every
    /// timestamp has an RFC 3339 form.
    pub const fn from_millis(ms: i64) -> Self {
        if ms < MIN_MS {
            Timestamp(MIN_MS)
        } else if ms > MAX_MS {
            Timestamp(MAX_MS)
        } else {
            Timestamp(ms)
        }
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// The current wall-clock time of this machine.
    pub fn now_system() -> Self {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis().min(MAX_MS as u128) as i64)
            .unwrap_or(0);
        Timestamp::from_millis(ms)
    }

    /// This instant moved `d` later (saturating at year 9999).
    pub fn saturating_add(self, d: Duration) -> Self {
        let add = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Timestamp::from_millis(self.0.saturating_add(add))
    }

    /// This instant moved `d` earlier (saturating at the epoch).
    pub fn saturating_sub(self, d: Duration) -> Self {
        let sub = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Timestamp::from_millis(self.0.saturating_sub(sub))
    }

    /// Time from `earlier` to `self`, zero if `earlier` is not earlier.
    pub fn duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0).max(0) as u64)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        let days = ms.div_euclid(86_400_000);
        let rem = ms.rem_euclid(86_400_000);
        let (y, m, d) = civil_from_days(days);
        let (h, rem) = (rem / 3_600_000, rem % 3_600_000);
        let (mi, rem) = (rem / 60_000, rem % 60_000);
        let (s, milli) = (rem / 1000, rem % 1000);
        write!(f, "{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
    }
}

impl FromStr for Timestamp {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_rfc3339(s).ok_or_else(|| {
            EngineError::invalid(
                "timestamp",
                s,
                "expected RFC 3339 such as 2026-11-23T12:00:00Z, between years 1970 and 9999",
            )
        })
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A duration as people write it: `500ms`, `30s`, `5m`, `2h`, `7d`, or a
/// bare number of seconds; fractions are allowed (`1.5h`).
///
/// ```
/// use std::time::Duration;
/// use baton_core::{format_duration, parse_duration};
/// assert_eq!(parse_duration("36h").unwrap(), Duration::from_secs(36 * 3600));
/// assert_eq!(format_duration(Duration::from_secs(30 * 86_400)), "30d");
/// assert!(parse_duration("3 weeks").is_err());
/// ```
///
/// # Errors
/// `InvalidInput` naming the text and the units accepted.
pub fn parse_duration(text: &str) -> Result<Duration, EngineError> {
    let t = text.trim();
    let (number, unit) = match t.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: f64 = number.parse().map_err(|_| {
        EngineError::invalid(
            "duration",
            text,
            "write a duration like 500ms, 30s, 5m, 2h or 7d",
        )
    })?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86_400.0,
        other => {
            return Err(EngineError::invalid(
                "duration",
                text,
                format!("unknown unit {other:?}; use ms, s, m, h or d"),
            ));
        }
    };
    let d = Duration::try_from_secs_f64(secs)
        .map_err(|e| EngineError::invalid("duration", text, e.to_string()))?;
    // Whole milliseconds, what every backend stores: a finer duration is
    // refused, never cut short silently (float noise far below a
    // millisecond is not finer).
    let ms = d.as_secs_f64() * 1000.0;
    if (ms - ms.round()).abs() > 1e-3 {
        return Err(EngineError::invalid(
            "duration",
            text,
            "durations are counted in whole milliseconds",
        ));
    }
    Ok(Duration::from_millis(ms.round().min(u64::MAX as f64) as u64))
}

/// A duration in the largest unit that writes it whole (`30d`, `36h`,
/// `90m`, `45s`, `1500ms`); [`parse_duration`] reads it back.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, size) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms >= size && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Proleptic Gregorian (year, month, day) to days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)? as u32, num(8..10)? as u32);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) {
        return None;
    }
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                millis = millis * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..3 {
            millis *= 10;
        }
    }
    let offset_min = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 60 + om;
            if *sign == b'-' { -off } else { off }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let ms = days * 86_400_000 + h * 3_600_000 + mi * 60_000 + sec.min(59) * 1000 + millis
        - offset_min * 60_000;
    (MIN_MS..=MAX_MS).contains(&ms).then_some(Timestamp(ms))
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// The source of "now" for a backend.
///
/// Every time-dependent decision a backend makes (lease expiry, backoff,
/// promotion, deadlines, retention) reads this clock, never the system time
/// directly, so tests can move time forward without sleeping.
///
/// ```
/// use std::time::Duration;
/// use baton_core::{Clock, ManualClock, Timestamp};
/// let clock = ManualClock::new(Timestamp::from_millis(1_000));
/// clock.advance(Duration::from_secs(2));
/// assert_eq!(clock.now().as_millis(), 3_000);
/// ```
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// A shared clock handle, as backends hold it.
pub type SharedClock = Arc<dyn Clock>;

/// The real wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now_system()
    }
}

impl SystemClock {
    /// A [`SharedClock`] reading the system time.
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock)
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug)]
pub struct ManualClock {
    now_ms: AtomicI64,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock {
            now_ms: AtomicI64::new(start.as_millis()),
        }
    }

    /// Moves the clock `d` forward.
    pub fn advance(&self, d: Duration) {
        let add = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        self.now_ms.fetch_add(add, Ordering::SeqCst);
    }

    /// Sets the clock to `t` (which may move it backwards).
    pub fn set(&self, t: Timestamp) {
        self.now_ms.store(t.as_millis(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.now_ms.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_read_in_whole_milliseconds() {
        let ok = |t: &str| parse_duration(t).unwrap_or_else(|e| panic!("{t}: {e}"));
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("0.1s"), Duration::from_millis(100));
        assert_eq!(ok("1.5h"), Duration::from_secs(5400));
        assert_eq!(ok("2"), Duration::from_secs(2));
        assert_eq!(ok("7d"), Duration::from_secs(7 * 86_400));
        for bad in ["1.0005s", "0.5ms", "soon", "3w", ""] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        for d in [1, 999, 1_000, 60_000, 5_400_000, 86_400_000, 90_061_001] {
            let d = Duration::from_millis(d);
            assert_eq!(ok(&format_duration(d)), d);
        }
        assert_eq!(format_duration(Duration::from_secs(36 * 3600)), "36h");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn round_trips_known_instants() {
        for (ms, text) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (1_795_435_200_123, "2026-11-23T12:00:00.123Z"),
            (MAX_MS, "9999-12-31T23:59:59.999Z"),
        ] {
            let t = Timestamp::from_millis(ms);
            assert_eq!(t.to_string(), text);
            assert_eq!(text.parse::<Timestamp>().unwrap(), t);
        }
    }

    #[test]
    fn parses_offsets_and_fractions() {
        let t: Timestamp = "2026-11-23T12:00:00-02:30".parse().unwrap();
        assert_eq!(t.to_string(), "2026-11-23T14:30:00.000Z");
        let t: Timestamp = "2026-11-23T12:00:00.5Z".parse().unwrap();
        assert_eq!(t.as_millis() % 1000, 500);
        let t: Timestamp = "2026-11-23T12:00:00.123456789Z".parse().unwrap();
        assert_eq!(t.as_millis() % 1000, 123);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "2026-11-23",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T12:00:00",
            "2026-11-23T12:00:00.Z",
            "1969-12-31T23:59:59Z",
            "2026-11-23T12:00:00+0100",
        ] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Timestamp::from_millis(10));
        assert_eq!(c.now().as_millis(), 10);
        c.advance(Duration::from_millis(5));
        assert_eq!(c.now().as_millis(), 15);
        c.set(Timestamp::from_millis(3));
        assert_eq!(c.now().as_millis(), 3);
    }
}
