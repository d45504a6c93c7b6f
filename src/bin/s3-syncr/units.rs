//! Byte sizes (`64k`, `1MiB`) and durations (`500ms`, `10s`, `7d`) as the command line takes
//! them.

use std::time::Duration;

/// When `append` flushes, besides at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushEvery {
    /// After at least this many bytes since the last flush.
    Bytes(u64),
    /// When the oldest unflushed byte is this old.
    Interval(Duration),
}

/// What each kind of flag takes, for its errors: each lists only its own units.
const SIZES: &str = "b, k or KiB, KB, MiB, MB, g or GiB, GB";
const DURATIONS: &str = "ms, s, min, h, d";

/// Parses `--flush-every`: a size or a duration.
pub fn parse_flush_every(text: &str) -> Result<FlushEvery, String> {
    let (_, unit) = split(text)?;
    let flush = if unit == "m" {
        return Err(format!(
            "{text:?}: m could mean minutes or MiB: write min for minutes, MiB for a size"
        ));
    } else if duration_unit(&unit).is_some() {
        FlushEvery::Interval(parse_duration(text)?)
    } else if size_unit(&unit).is_some() {
        FlushEvery::Bytes(parse_size(text)?)
    } else {
        return Err(format!(
            "{text:?}: unknown unit {unit:?}: a size takes {SIZES}; a duration takes {DURATIONS}"
        ));
    };
    if matches!(flush, FlushEvery::Bytes(0)) {
        return Err("must be more than 0 bytes".into());
    }
    Ok(flush)
}

/// Parses a byte count: a whole number with an optional unit, `k`/`KiB` (1024), `KB` (1000),
/// `MiB`, `MB`, `g`/`GiB`, `GB`, `b` (case-insensitive). A lone `m` is refused: next to `min`
/// for minutes, it reads both ways.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let (number, unit) = split(text)?;
    let scale = match size_unit(&unit) {
        Some(scale) => scale,
        None if unit == "m" => {
            return Err(format!("{text:?}: m is ambiguous: write MiB (or MB)"));
        }
        None => return Err(format!("{text:?}: unknown unit {unit:?}: use {SIZES}")),
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Parses `--seal-size`: a number of MiB, or a size with its unit (`64MiB`, `1GiB`) that is a
/// whole number of MiB, at least 1.
pub fn parse_seal_size(text: &str) -> Result<u32, String> {
    let (_, unit) = split(text)?;
    let mib = match unit.as_str() {
        "" => split(text)?.0,
        _ => {
            let bytes = parse_size(text)?;
            if bytes % MIB != 0 {
                return Err(format!("{text:?} is not a whole number of MiB"));
            }
            bytes / MIB
        }
    };
    match u32::try_from(mib) {
        Ok(0) => Err("must be at least 1 MiB".into()),
        Ok(mib) => Ok(mib),
        Err(_) => Err(format!("{text:?} is too large")),
    }
}

const MIB: u64 = 1 << 20;

fn size_unit(unit: &str) -> Option<u64> {
    match unit {
        "" | "b" => Some(1),
        "k" | "kib" => Some(1 << 10),
        "kb" => Some(1_000),
        "mib" => Some(MIB),
        "mb" => Some(1_000_000),
        "g" | "gib" => Some(1 << 30),
        "gb" => Some(1_000_000_000),
        _ => None,
    }
}

/// Parses a duration of at least 1 ms: a whole number followed by `ms`, `s`, `min`, `h` or `d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = split(text)?;
    let millis_per_unit = match duration_unit(&unit) {
        Some(millis) => millis,
        None if unit.is_empty() => {
            return Err(format!("{text:?} has no time unit: use {DURATIONS}"));
        }
        None if unit == "m" => {
            return Err(format!("{text:?}: m is ambiguous: write min for minutes"));
        }
        None => return Err(format!("{text:?}: unknown unit {unit:?}: use {DURATIONS}")),
    };
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
        "d" => Some(86_400_000),
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
        assert_eq!(parse_size("3MiB"), Ok(3 << 20));
        assert_eq!(parse_size("3g"), Ok(3 << 30));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        for bad in [
            "",
            "k",
            "1.5MiB",
            "-1",
            "12 parsecs",
            "99999999999999999999",
            "1000000000000g",
            "3m",
            "10s",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
        let ambiguous = parse_size("3m").unwrap_err();
        assert!(ambiguous.contains("MiB"), "{ambiguous}");
        // Each error lists only what the flag takes.
        let not_a_size = parse_size("10s").unwrap_err();
        assert!(!not_a_size.contains("min"), "{not_a_size}");
        let not_a_duration = parse_duration("10k").unwrap_err();
        assert!(!not_a_duration.contains("KiB"), "{not_a_duration}");
    }

    #[test]
    fn seal_sizes_are_mib_with_or_without_units() {
        assert_eq!(parse_seal_size("8"), Ok(8));
        assert_eq!(parse_seal_size("64MiB"), Ok(64));
        assert_eq!(parse_seal_size("1GiB"), Ok(1024));
        assert_eq!(parse_seal_size("2048k"), Ok(2));
        for bad in ["0", "0MiB", "1000k", "5MB", "1m", "99999999999"] {
            assert!(parse_seal_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_and_flush_policies() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2min"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        for bad in ["0s", "10", "1m", "s", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_flush_every("1MiB"), Ok(FlushEvery::Bytes(1 << 20)));
        assert_eq!(parse_flush_every("4096"), Ok(FlushEvery::Bytes(4096)));
        assert_eq!(
            parse_flush_every("500ms"),
            Ok(FlushEvery::Interval(Duration::from_millis(500)))
        );
        for bad in ["0", "0ms", "fast", "10 sec", "1m"] {
            assert!(parse_flush_every(bad).is_err(), "{bad:?}");
        }
        let ambiguous = parse_flush_every("1m").unwrap_err();
        assert!(
            ambiguous.contains("min") && ambiguous.contains("MiB"),
            "{ambiguous}"
        );
    }
}
