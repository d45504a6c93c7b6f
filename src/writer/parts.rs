//! Cutting the tail into parts, within the budget of bytes the writer holds.

use std::sync::Arc;

use super::object::{Id, Object, Part, Source, State, Upload};
use super::{Cut, Room, Streaming, Writer};
use crate::Error;
use crate::index::Index;

impl Writer {
    /// Hands the tail's bytes to its upload, a part at a time, starting the upload once a
    /// part's worth is there. With [`Cut::Rest`], the bytes short of a part go too, as the
    /// upload's last part, if an upload is under way (else the object's final upload sends
    /// them).
    pub(super) fn stream(&mut self, index: &mut Index, cut: Cut) -> Result<(), Error> {
        let part = self.streaming.part_size;
        while self.next_cut(part, cut).is_some() {
            self.make_room(index, Room::Part)?;
            // Making room may have completed the tail's upload, which changes what is left.
            if let Some(n) = self.next_cut(part, cut) {
                self.cut(n, part);
                self.pump(index)?;
            }
        }
        Ok(())
    }

    /// How many bytes of the tail's buffer go out as the next part, if any. An upload with
    /// nothing left to send is closed by [`Cut::Rest`].
    fn next_cut(&mut self, part: usize, cut: Cut) -> Option<usize> {
        // Appends need no upload: each flush, or each part's worth, is one append.
        if self.streaming.appends {
            return None;
        }
        let tail = self.objects.back_mut()?;
        let len = tail.buf.len();
        let rest = cut == Cut::Rest;
        match tail.upload.as_mut() {
            Some(upload) if upload.closed => None,
            Some(upload) if rest && len == 0 => {
                upload.closed = true;
                None
            }
            Some(_) if rest => Some(len.min(part)),
            _ if len >= part => Some(part),
            _ => None,
        }
    }

    /// Moves the first `n` bytes of the tail's buffer into a new part, to be sent once the
    /// upload has an ID (asked for now if there is no upload yet).
    fn cut(&mut self, n: usize, part: usize) {
        let client = self.client.clone();
        let tail = self.objects.back_mut().expect("only the tail is cut");
        let upload = tail.upload.get_or_insert_with(|| {
            // The object as S3 holds it comes first, copied by the server.
            let copy = (tail.released > 0).then_some(Part {
                number: 1,
                len: tail.released,
                source: Source::Copy,
                state: State::Queued,
            });
            Upload {
                // Created at the next pump.
                id: Id::Wanted,
                parts: copy.into_iter().collect(),
                closed: false,
            }
        });
        let buf = Arc::make_mut(&mut tail.buf);
        // With nothing left over (a seal, a flush), the next write takes a buffer then.
        let rest = if buf.len() > n {
            let mut rest = self.pool.take(part.max(buf.len() - n));
            rest.extend_from_slice(&buf[n..]);
            buf.truncate(n);
            rest
        } else {
            Vec::new()
        };
        let bytes = Arc::new(std::mem::replace(buf, rest));
        let number = match upload.parts.last() {
            None => 1,
            Some(
                copy @ Part {
                    source: Source::Copy,
                    ..
                },
            ) => copy.number + client.copy_parts(copy.len as u64),
            Some(last) => last.number + 1,
        };
        upload.parts.push(Part {
            number,
            len: n,
            source: Source::Bytes(bytes),
            state: State::Queued,
        });
        upload.closed = n < part;
    }

    /// Waits until another part may start: fewer than the most parts uploading, and the bytes
    /// held within `(ahead + 1) × part`. Parts of the tail that S3 already has are let go if
    /// that is what it takes: the tail is larger than the budget. For [`Room::Seal`], waits
    /// instead until no sealed object is left.
    pub(super) fn make_room(&mut self, index: &mut Index, room: Room) -> Result<(), Error> {
        loop {
            let seen = self.bell.seen();
            self.pump(index)?;
            let Streaming {
                append_by_copy,
                part_size: part,
                write_ahead: ahead,
                ..
            } = self.streaming;
            let room = match room {
                Room::Seal => self.objects.len() == 1,
                // Without appending by copy the tail is held until it is sealed (the next
                // flush sends it again): only the parts in flight are bounded.
                Room::Part if append_by_copy.is_none() => self.running_parts() < ahead,
                Room::Part => {
                    let held: usize = self.objects.iter().map(Object::in_memory).sum();
                    let over = held > (ahead + 1) * part;
                    if over && self.release_tail_parts() {
                        continue;
                    }
                    !over && self.running_parts() < ahead
                }
            };
            if room || self.running() == 0 {
                return Ok(());
            }
            self.bell.wait_past(seen);
        }
    }

    /// Lets go of the bytes of the tail's parts that S3 has; whether there were any.
    fn release_tail_parts(&mut self) -> bool {
        let Some(upload) = self.objects.back_mut().and_then(|t| t.upload.as_mut()) else {
            return false;
        };
        let mut released = false;
        for part in &mut upload.parts {
            if matches!(part.state, State::Done(_)) && matches!(part.source, Source::Bytes(_)) {
                if let Some(bytes) =
                    std::mem::replace(&mut part.source, Source::Released).into_bytes()
                {
                    self.pool.give(bytes);
                }
                released = true;
            }
        }
        released
    }

    /// Parts uploading or waiting for their upload's ID: what `write_ahead` bounds.
    fn running_parts(&self) -> usize {
        (self.objects.iter().flat_map(|o| &o.upload))
            .flat_map(|u| &u.parts)
            .filter(|p| matches!(p.state, State::Running(_) | State::Queued))
            .count()
    }
}
