//! Seeking: anywhere from the first offset still in S3 to the stream's length.

use std::io::{self, Seek, SeekFrom};

use super::Storage;
use crate::Error;

impl Seek for Storage {
    /// Moves the read position to any offset from the first one still in S3 to the stream's
    /// length (its unflushed bytes included), and returns it. Offsets are absolute: they do not
    /// move when older objects are deleted. Seeking from the end, or past the length last seen,
    /// lists the objects; a seek inside the chunk already fetched sends nothing. A target
    /// before the first offset is [`Error::Trimmed`], a negative one or one past the end
    /// [`Error::SeekPositionNotSupported`]; both leave the position unchanged. Writes still
    /// append to the end.
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            // A new handle learns where the stream is as `len` does (the front only if the
            // target lies before what that listed).
            SeekFrom::Start(n) if !self.index.anchored() && !self.writer.started() => {
                self.len()?;
                Some(n)
            }
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(delta) => self.position()?.checked_add_signed(delta),
            SeekFrom::End(delta) => self.len()?.checked_add_signed(delta),
        };
        if let Some(t) = target.filter(|&t| self.index.unlisted_at(t)) {
            self.index
                .locate(&*self.client, t, !self.writer.started())?;
        }
        let first = self.index.first();
        let target = match target {
            Some(requested) if requested < first => {
                return Err(Error::Trimmed { requested, first }.into());
            }
            Some(t) if t <= self.known_len() => t,
            Some(t) if !matches!(to, SeekFrom::End(_)) && t <= self.len()? => t,
            _ => return Err(Error::SeekPositionNotSupported.into()),
        };
        self.reader.seek(target);
        self.positioned = true;
        Ok(target)
    }

    /// The read position: the first offset for a new handle. Unlike `seek(Current(0))` it
    /// succeeds even when the position was trimmed since.
    fn stream_position(&mut self) -> io::Result<u64> {
        Ok(self.position()?)
    }
}
