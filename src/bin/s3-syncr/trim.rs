//! `trim`: deletes a stream's oldest objects, moving no offset.

use std::io::{self, Write};
use std::time::{Duration, SystemTime};

use s3_syncr::{Error, Object, Storage};
use s3s::dto::{Timestamp, TimestampFormat};

use crate::Failure;

/// Which objects `trim` deletes: those that end at or before an offset, given one of three ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// `--before OFFSET`.
    Before(u64),
    /// `--keep SIZE`: the newest SIZE bytes stay.
    Keep(u64),
    /// `--older-than DURATION`: objects last modified longer ago than that.
    OlderThan(Duration),
    /// `--before-gap`: every object before the stream's last gap.
    BeforeGap,
}

impl Cut {
    /// The offset a trim deletes up to, for `objects`, the stream's, at time `now`.
    fn before(self, objects: &[Object], now: SystemTime) -> Result<u64, Failure> {
        let end = objects.last().map_or(0, |s| s.start + s.size);
        Ok(match self {
            Cut::Before(offset) => offset,
            // `run` leaves this one to the library: a gap is no offset.
            Cut::BeforeGap => 0,
            Cut::Keep(size) => end.saturating_sub(size),
            Cut::OlderThan(age) => {
                let cutoff = now.checked_sub(age).unwrap_or(SystemTime::UNIX_EPOCH);
                // Only the oldest objects go: the run of old ones at the front.
                let mut before = objects.first().map_or(0, |s| s.start);
                for object in objects {
                    if modified(object)? >= cutoff {
                        break;
                    }
                    before = object.start + object.size;
                }
                before
            }
        })
    }
}

/// When `object` was last modified, from the listing's RFC 3339 time.
fn modified(object: &Object) -> Result<SystemTime, Failure> {
    let unreadable = || {
        Failure(format!(
            "{}: unreadable last-modified time {:?}",
            object.key, object.last_modified
        ))
    };
    let stamp = Timestamp::parse(TimestampFormat::DateTime, &object.last_modified)
        .map_err(|_| unreadable())?;
    let mut seconds = Vec::new();
    stamp
        .format(TimestampFormat::EpochSeconds, &mut seconds)
        .map_err(|_| unreadable())?;
    let seconds: f64 = String::from_utf8_lossy(&seconds)
        .parse()
        .map_err(|_| unreadable())?;
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(seconds.max(0.0)))
}

/// Deletes the objects `cut` selects (or with `dry_run`, says which it would), and prints them
/// and the stream's new first offset.
pub fn run(
    out: &mut impl Write,
    storage: &mut Storage,
    cut: Cut,
    dry_run: bool,
) -> Result<(), Failure> {
    let listing = storage.listing()?;
    let objects = &listing.objects;
    // The dry runs ask what the real ones would, so they refuse where the real ones would.
    if cut == Cut::BeforeGap {
        let first = match dry_run {
            true => storage.trim_before_gap_dry_run()?,
            false => storage.trim_before_gap()?,
        };
        let next = listing.gaps.last().map_or(0, |gap| gap.last_seq + 1);
        let gone: Vec<&Object> = objects.iter().take_while(|s| s.seq < next).collect();
        return write(out, &gone, first, dry_run).map_err(Failure::from);
    }
    if let Some(gap) = listing.gaps.first() {
        // Offsets do not cross a gap, so no offset, size or age can cut there.
        let err = Error::MissingObject {
            key: gap.first_key.clone(),
        };
        return Err(Failure(format!(
            "{err} (s3-syncr ls shows it; trim --before-gap deletes the objects before it)"
        )));
    }
    let before = cut.before(objects, SystemTime::now())?;
    let first = match dry_run {
        true => storage.trim_dry_run(before)?,
        false => storage.trim(before)?,
    };
    // Whole objects, oldest first, never the last: as `Storage::trim` chooses.
    let candidates = &objects[..objects.len().saturating_sub(1)];
    let gone: Vec<&Object> = (candidates.iter())
        .take_while(|s| s.start + s.size <= first)
        .collect();
    write(out, &gone, first, dry_run).map_err(Failure::from)
}

fn write(out: &mut impl Write, gone: &[&Object], first: u64, dry_run: bool) -> io::Result<()> {
    let verb = if dry_run { "would delete" } else { "deleted" };
    for s in gone {
        writeln!(
            out,
            "{verb} {} (offset {}, {} bytes)",
            s.key, s.start, s.size
        )?;
    }
    let bytes: u64 = gone.iter().map(|s| s.size).sum();
    let now = if dry_run { "would start" } else { "starts" };
    writeln!(
        out,
        "{verb} {} object{} ({bytes} bytes): the stream {now} at offset {first}",
        gone.len(),
        if gone.len() == 1 { "" } else { "s" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(seq: u64, start: u64, size: u64, modified: &str) -> Object {
        Object {
            key: format!("log-{seq:020}.txt"),
            seq,
            start,
            size,
            last_modified: modified.into(),
        }
    }

    #[test]
    fn each_cut_gives_an_offset() {
        let objects = [
            object(3, 100, 10, "2025-01-01T00:00:00.000Z"),
            object(4, 110, 10, "2025-01-02T00:00:00Z"),
            object(5, 120, 5, "2025-01-03T00:00:00.000Z"),
        ];
        let day = Duration::from_secs(86_400);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_735_689_600) + 3 * day;
        let before = |cut: Cut| cut.before(&objects, now).unwrap();
        assert_eq!(before(Cut::Before(7)), 7);
        assert_eq!(before(Cut::Keep(5)), 120);
        assert_eq!(before(Cut::Keep(1000)), 0);
        assert_eq!(before(Cut::OlderThan(day / 2)), 125);
        assert_eq!(before(Cut::OlderThan(day + day / 2)), 120);
        assert_eq!(before(Cut::OlderThan(10 * day)), 100, "nothing that old");
        let odd = [object(0, 0, 1, "yesterday")];
        assert!(Cut::OlderThan(day).before(&odd, now).is_err());
    }
}
