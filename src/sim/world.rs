//! What happens to the stream outside its writers: expiries, trims, spoiled hints, a follower.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};

use super::check::records;
use super::{Follower, NAME, Sim};
use crate::Error;
use crate::client::mem::Object;
use crate::layout::Layout;

impl Sim {
    /// The stream's objects, by key: not its hint.
    pub(super) fn objects(&self) -> BTreeMap<String, Object> {
        self.mem.stream(NAME)
    }

    /// Spoils the stream's hint, as a writer of 0.2, a failed rewrite or another tool leaves
    /// it: gone, naming an object long past or past the end, or not a hint at all. Handles
    /// must read the stream as well without it.
    pub(super) fn spoil_hint(&mut self) {
        let layout = Layout::new(NAME).expect("layout");
        let key = layout.hint_key();
        let last = self
            .objects()
            .keys()
            .next_back()
            .and_then(|k| layout.seq(k));
        let seq = self.rng.below(last.unwrap_or(0) + 300);
        let spoiled: &[u8] = match self.rng.below(4) {
            0 => {
                self.mem.remove(&key);
                self.log.push("hint deleted".into());
                return;
            }
            1 => b"not a hint",
            2 => b"s3-syncr hint 1\nkey sim/other-s3syncr-hint.bin\nseq 1\nstart 0\n",
            _ => {
                let hint = format!("s3-syncr hint 1\nkey {key}\nseq {seq}\nstart 7\n");
                self.mem.insert(&key, hint.as_bytes());
                self.log.push(format!("hint names object {seq}"));
                return;
            }
        };
        self.mem.insert(&key, spoiled);
        self.log.push("hint spoiled".into());
    }

    /// Deletes an object, whole, never the last one: the oldest, as a trim would, or any
    /// other, as a lifecycle rule's expiry may (in any order, leaving a gap).
    pub(super) fn delete(&mut self, oldest: bool) {
        let objects = self.objects();
        let keys: Vec<&String> = objects.keys().collect();
        if keys.len() < 2 {
            return;
        }
        let i = match oldest {
            true => 0,
            false => self.rng.below(keys.len() as u64 - 1) as usize,
        };
        let key = keys[i].clone();
        self.mem.remove(&key);
        self.log.push(format!("deleted {key}"));
        self.forget(&objects);
    }

    /// A trim by a handle of its own, to a random offset: it deletes whole objects that end
    /// before it, oldest first, never the last one.
    pub(super) fn trim(&mut self) {
        let objects = self.objects();
        // Opened and listed before the trim, asked after it: what its open found and what it
        // listed are stale by then.
        let mut watcher = self.handle();
        let _ = watcher.len();
        let mut storage = self.handle();
        let trimmed = storage.len().and_then(|end| {
            let first = storage.first_offset()?;
            let before = first + self.rng.below(end.saturating_sub(first) + 1);
            storage.trim(before)
        });
        drop(storage);
        match trimmed {
            Ok(first) => {
                self.log
                    .push(format!("trimmed: the stream starts at {first}"));
                match watcher.first_offset() {
                    Ok(found) if found != first => {
                        self.fail(format!("a handle opened before finds {found}"))
                    }
                    Ok(_) | Err(Error::Transport { .. } | Error::Status { .. }) => {}
                    Err(err) => self.fail(format!("first offset after a trim: {err}")),
                }
            }
            // A stream with a gap is not trimmed by offset; faults may fail it too.
            Err(Error::MissingObject { .. } | Error::Transport { .. } | Error::Status { .. }) => {
                self.log.push("trim failed".into())
            }
            Err(err) => self.fail(format!("trim: {err}")),
        }
        self.forget(&objects);
    }

    /// The records of the objects in `before` that are gone now: deleted legitimately.
    pub(super) fn forget(&mut self, before: &BTreeMap<String, Object>) {
        let now = self.objects();
        for (key, object) in before {
            if now.contains_key(key) {
                continue;
            }
            match records(&object.bytes) {
                Ok(found) => self.model.deleted.extend(found),
                Err(err) => self.fail(format!("{key}: {err}")),
            }
            self.sealed.remove(key);
        }
    }

    /// A follower: a handle that reads what is appended, from the end it found. What it read
    /// must be the stream's bytes at its offsets, which [`Sim::check`] compares.
    pub(super) fn follow(&mut self) {
        let Some(follower) = self.follower.as_mut() else {
            let mut storage = self.handle();
            match storage.seek(SeekFrom::End(0)) {
                Ok(start) => {
                    self.follower = Some(Follower {
                        storage,
                        start,
                        bytes: Vec::new(),
                    });
                    self.log.push(format!("follower starts at {start}"));
                }
                Err(err) => self.log.push(format!("follower could not start: {err}")),
            }
            return;
        };
        match follower.storage.read_to_end(&mut follower.bytes) {
            Ok(n) => self.log.push(format!("follower read {n}")),
            Err(err) => {
                let inner = err.get_ref().and_then(|e| e.downcast_ref::<Error>());
                match inner {
                    Some(Error::Transport { .. } | Error::Status { .. }) => {}
                    // Bytes it had not read were deleted (a trim, an expiry): it stops here.
                    Some(Error::Trimmed { .. } | Error::MissingObject { .. }) => {
                        self.log.push(format!("follower stops: {err}"));
                        self.follower = None;
                    }
                    _ => self.fail(format!("follower: {err}")),
                }
            }
        }
    }
}
