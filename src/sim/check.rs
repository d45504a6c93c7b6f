//! The records writers append, and the checks of the stream against what each writer was told.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom};

use super::Sim;
use crate::Error;

/// A record: `<writer:number:padding>` and a newline.
pub(super) fn record(writer: usize, n: u64, len: usize) -> Vec<u8> {
    let mut record = format!("<{writer}:{n}:").into_bytes();
    record.resize(len.max(record.len() + 2) - 2, b'.');
    record.extend_from_slice(b">\n");
    record
}

/// The records of a stream, in order; `Err` names a line that is no record.
pub(super) fn records(stream: &[u8]) -> Result<Vec<(usize, u64)>, String> {
    let lines = stream.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    lines
        .map(|line| {
            let text = String::from_utf8_lossy(line);
            let mut fields = text.trim_start_matches('<').split(':');
            match (fields.next(), fields.next(), fields.next()) {
                (Some(w), Some(n), Some(pad)) if line.starts_with(b"<") && pad.ends_with('>') => {
                    match (w.parse(), n.parse()) {
                        (Ok(w), Ok(n)) => Ok((w, n)),
                        _ => Err(format!("torn record {:?}", &text[..text.len().min(40)])),
                    }
                }
                _ => Err(format!("torn record {:?}", &text[..text.len().min(40)])),
            }
        })
        .collect()
}

impl Sim {
    /// No object that a later one follows ever changes.
    pub(super) fn check_sealed(&mut self) {
        let objects = self.objects();
        for (key, etag) in &self.sealed {
            match objects.get(key) {
                Some(object) if &object.etag != etag => {
                    self.fail(format!("sealed object {key} was rewritten"))
                }
                _ => {}
            }
        }
        let keys: Vec<&String> = objects.keys().collect();
        for pair in keys.windows(2) {
            self.sealed
                .entry(pair[0].clone())
                .or_insert_with(|| objects[pair[0]].etag.clone());
        }
    }

    /// Where the part of the stream after its last gap starts, and the records before it
    /// (still stored, but no longer read through): the stream reads from there to its end.
    pub(super) fn after_last_gap(&self) -> (Option<u64>, HashSet<(usize, u64)>) {
        let objects = self.objects();
        let seq = |key: &str| -> u64 {
            let digits = key.trim_start_matches("sim/log-").trim_end_matches(".bin");
            digits.parse().unwrap_or(0)
        };
        let keys: Vec<&String> = objects.keys().collect();
        let Some(i) = (keys.windows(2)).rposition(|w| seq(w[1]) != seq(w[0]) + 1) else {
            return (None, HashSet::new());
        };
        let after = &objects[keys[i + 1]];
        let start = (after.meta.iter())
            .find(|(name, _)| name == "x-amz-meta-s3syncr-start")
            .and_then(|(_, value)| value.parse().ok());
        let before = keys[..=i]
            .iter()
            .flat_map(|key| records(&objects[*key].bytes).unwrap_or_default())
            .collect();
        (start, before)
    }

    /// Reads the stream with a new handle, from its first byte (or from after its last gap)
    /// to its end, and checks it against the model and what the follower read.
    pub(super) fn check(&mut self) {
        self.checks += 1;
        let (from, before_gap) = self.after_last_gap();
        let mut reader = self.handle();
        let mut stream = Vec::new();
        let read = match from {
            Some(from) => reader.seek(SeekFrom::Start(from)).map(drop),
            None => Ok(()),
        };
        let first = reader.stream_position();
        let read = read.and_then(|()| reader.read_to_end(&mut stream));
        drop(reader);
        if let Err(err) = read {
            let inner = err.get_ref().and_then(|e| e.downcast_ref::<Error>());
            match inner {
                // What the faults may cause: a request that failed through its retries.
                Some(Error::Transport { .. } | Error::Status { .. }) => {
                    self.failed_reads += 1;
                    return;
                }
                _ => self.fail(format!("reading the stream: {err}")),
            }
        }
        if let Ok(first) = first {
            self.check_ends(from.is_none().then_some(first), first + stream.len() as u64);
        }
        let found = match records(&stream) {
            Ok(found) => found,
            Err(err) => self.fail(err),
        };
        let mut last: HashMap<usize, u64> = HashMap::new();
        let mut seen = HashSet::new();
        for &(w, n) in &found {
            if !seen.insert((w, n)) {
                self.fail(format!("record {w}:{n} is in the stream twice"));
            }
            if last.get(&w).is_some_and(|&before| before >= n) {
                self.fail(format!(
                    "record {w}:{n} comes after a later one of its writer"
                ));
            }
            last.insert(w, n);
            if self.seed.is_multiple_of(2) && self.model.refused.contains(&(w, n)) {
                self.fail(format!(
                    "record {w}:{n} was handed back as not stored, yet is"
                ));
            }
        }
        for &(w, n) in &self.model.acked {
            let gone = self.model.deleted.contains(&(w, n)) || before_gap.contains(&(w, n));
            if !seen.contains(&(w, n)) && !gone {
                self.fail(format!("acknowledged record {w}:{n} is missing"));
            }
        }
        // What the follower read is the stream's bytes at its offsets.
        if let (Some(follower), Ok(first)) = (&self.follower, first)
            && follower.start >= first
        {
            let at = (follower.start - first) as usize;
            let end = at + follower.bytes.len();
            if end <= stream.len() && stream[at..end] != follower.bytes[..] {
                self.fail(format!(
                    "the follower read other bytes at {}",
                    follower.start
                ));
            }
        }
        self.log.push(format!("checked {} records", found.len()));
    }

    /// Checks that new handles find, without listing the stream whole, the `end` a read found,
    /// and the `first` offset it started at (if it started there, not after a gap).
    fn check_ends(&mut self, first: Option<u64>, end: u64) {
        let ends = self.handle().ends();
        let offset = first.map(|_| self.handle().first_offset()).transpose();
        let (ends, offset) = match (ends, offset) {
            (Ok(ends), Ok(offset)) => (ends, offset),
            (Err(err), _) | (_, Err(err)) => match err {
                Error::Transport { .. } | Error::Status { .. } => {
                    self.failed_reads += 1;
                    return;
                }
                err => self.fail(format!("the stream's ends: {err}")),
            },
        };
        let found = ends.map_or((0, 0), |e| (e.first, e.end));
        if found.1 != end || first.is_some_and(|f| found.0 != f || offset != Some(f)) {
            self.fail(format!(
                "the stream's ends: {found:?} and first offset {offset:?}, read {first:?} to {end}"
            ));
        }
    }
}
