//! Byte sizes (`64k`, `1MiB`) and durations (`500ms`, `10s`) as the command line takes them.

use std::time::Duration;

/// When `append` flushes, besides at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushEvery {
    /// After at least this many bytes since the last flush.
    Bytes(u64),
    /// When the oldest unflushed byte is this old.
    Interval(Duration),
}

/// Parses `--flush-every`: a size or a duration.
pub fn parse_flush_every(text: &str) -> Result<FlushEvery, String> {
    let (_, unit) = split(text)?;
    let flush = if duration_unit(&unit).is_some() {
        FlushEvery::Interval(parse_duration(text)?)
    } else {
        FlushEvery::Bytes(parse_size(text)?)
    };
    if matches!(flush, FlushEvery::Bytes(0)) {
        return Err("must be more than 0 bytes".into());
    }
    Ok(flush)
}

/// Parses a byte count: a whole number with an optional unit, `k`/`KiB` (1024), `KB` (1000),
/// `m`/`MiB`, `MB`, `g`/`GiB`, `GB`, `b` (case-insensitive).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let (number, unit) = split(text)?;
    let scale: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "kb" => 1_000,
        "m" | "mib" => 1 << 20,
        "mb" => 1_000_000,
        "g" | "gib" => 1 << 30,
        "gb" => 1_000_000_000,
        _ => {
            return Err(format!(
                "unknown unit {unit:?}: use b, k (KiB), KB, m (MiB), MB, g (GiB), GB, or ms, s, min, h for a duration"
            ));
        }
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Parses a duration of at least 1 ms: a whole number followed by `ms`, `s`, `min` or `h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = split(text)?;
    let millis_per_unit = duration_unit(&unit)
        .ok_or_else(|| format!("{text:?} has no time unit: use ms, s, min or h"))?;
    let millis = number
        .checked_mul(millis_per_unit)
        .ok_or_else(|| format!("{text:?} is too long"))?;
    if millis == 0 {
        return Err("must be at least 1ms".into());
    }
    Ok(Duration::from_millis(millis))
}

fn duration_unit(unit: &str) -> Option<u64> {
    match unit {
        "ms" => Some(1),
        "s" => Some(1_000),
        "min" => Some(60_000),
        "h" => Some(3_600_000),
        _ => None,
    }
}

/// Splits `64KiB` into `64` and `"kib"`.
fn split(text: &str) -> Result<(u64, String), String> {
    let text = text.trim();
    let digits = text.len() - text.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (number, unit) = text.split_at(digits);
    let number = number
        .parse()
        .map_err(|_| format!("{text:?} does not start with a whole number"))?;
    if unit.starts_with(['.', ',']) {
        return Err(format!(
            "{text:?} is not a whole number: use a smaller unit"
        ));
    }
    Ok((number, unit.trim().to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("123"), Ok(123));
        assert_eq!(parse_size("64k"), Ok(64 * 1024));
        assert_eq!(parse_size("64 KiB"), Ok(64 * 1024));
        assert_eq!(parse_size("2KB"), Ok(2000));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("3m"), Ok(3 << 20));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        for bad in [
            "",
            "k",
            "1.5MiB",
            "-1",
            "12 parsecs",
            "99999999999999999999",
            "1000000000000g",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_and_flush_policies() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2min"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["0s", "10", "1m", "s", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_flush_every("1MiB"), Ok(FlushEvery::Bytes(1 << 20)));
        assert_eq!(parse_flush_every("4096"), Ok(FlushEvery::Bytes(4096)));
        assert_eq!(
            parse_flush_every("500ms"),
            Ok(FlushEvery::Interval(Duration::from_millis(500)))
        );
        for bad in ["0", "0ms", "fast", "10 sec"] {
            assert!(parse_flush_every(bad).is_err(), "{bad:?}");
        }
    }
}
