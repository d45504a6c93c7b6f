//! Objects become whole in S3 in stream order: the outcome of each request is taken as it
//! ends, and the oldest object's final upload starts only once every object before it is
//! whole.

use std::sync::Arc;
use std::time::Instant;

use super::Writer;
use super::object::{Id, Object, Pass, Phase, Source, State};
use crate::Error;
use crate::index::Index;

impl Writer {
    /// Jobs under way, each of which rings the bell when it ends.
    pub(super) fn running(&self) -> usize {
        let uploads = self.objects.iter().flat_map(|o| &o.upload);
        let creating = uploads.clone().filter(|u| matches!(u.id, Id::Creating(_)));
        let parts = uploads.flat_map(|u| &u.parts);
        let sending = parts.filter(|p| matches!(p.state, State::Running(_)));
        let finishing = self.objects.iter().filter(|o| o.finish.is_some());
        creating.count() + sending.count() + finishing.count()
    }

    /// Takes the outcome of every job that ended, sends again the parts whose failure was
    /// reported before, and starts the final upload of the oldest object once it can: objects
    /// become whole in S3 in stream order. Reports the first failure, after the request's own
    /// retries.
    pub(super) fn pump(&mut self, index: &mut Index) -> Result<(), Error> {
        self.advance(index, Pass::Start)
    }

    /// Waits for every job under way, starting none: after a failed flush, nothing of it is
    /// left running, and the next call starts again from what S3 has. Failures met meanwhile
    /// are tried again then (a fence is taken at once).
    pub(super) fn wait_idle(&mut self, index: &mut Index) {
        loop {
            let seen = self.bell.seen();
            // The flush already reports a failure: later ones are retried, not reported.
            let _ = self.advance(index, Pass::Collect);
            if self.running() == 0 || self.stopped.is_some() {
                return;
            }
            self.bell.wait_past(seen);
        }
    }

    /// [`pump`](Writer::pump), or with [`Pass::Collect`] only taking outcomes.
    pub(super) fn advance(&mut self, index: &mut Index, pass: Pass) -> Result<(), Error> {
        let mut failure = None;
        for object in &mut self.objects {
            if let Err(err) = object.advance_upload(&self.client, &self.bell, pass) {
                failure.get_or_insert(err);
            }
        }
        let appends = self.streaming.appends.then_some(self.streaming.part_size);
        while failure.is_none() {
            let flushing = self.flushing && self.objects.len() == 1;
            let Some(oldest) = self.objects.front_mut() else {
                break;
            };
            let sealed = oldest.phase == Phase::Sealed;
            // A part's worth of bytes is appended without waiting for a flush, as a part of a
            // multipart upload would stream out.
            let due = appends.is_some_and(|part| oldest.unflushed() >= part);
            match oldest.finish.take() {
                Some(job) if !job.is_finished() => {
                    oldest.finish = Some(job);
                    break;
                }
                Some(job) => match job.join() {
                    Ok(etag) => self.finished(index, etag),
                    Err(err) if err.is_too_many_parts() => {
                        if let Err(err) = self.parts_full() {
                            failure = Some(err);
                        }
                    }
                    // Its Complete found the upload gone, and the object is not ours.
                    Err(err) if err.is_upload_gone() => {
                        if let Err(err) = oldest.restart_upload(&self.client, &self.bell, pass) {
                            failure = Some(err);
                        }
                    }
                    Err(err) => failure = Some(err),
                },
                // A closed upload (its last part cut by a seal, or by a flush that failed) is
                // completed as soon as it can be, flush or not, so that the bytes written
                // after it can stream out again.
                None if !(sealed || flushing || due || oldest.closed()) || !oldest.ready() => {
                    break;
                }
                None if oldest.upload.is_none() && oldest.unflushed() == 0 => {
                    if !sealed {
                        break;
                    }
                    index.cover(oldest.seq, oldest.len() as u64);
                    if let Some(done) = self.objects.pop_front() {
                        self.pool.give(done.buf);
                    }
                }
                None if pass == Pass::Start => {
                    let stale = self.end_seen.elapsed() >= self.streaming.fresh_end;
                    let look_past = oldest.etag.is_none() && stale;
                    let job = oldest.start_finish(&self.client, &self.bell, look_past);
                    oldest.finish = Some(job);
                }
                None => break,
            }
        }
        match failure {
            Some(err @ (Error::UploadLost { .. } | Error::Fenced { .. })) => {
                self.await_finish(index);
                Err(self.fail(err))
            }
            Some(err) => Err(self.fail(err)),
            None => Ok(()),
        }
    }

    /// Waits for the oldest object's final upload, if one is under way, and takes its
    /// outcome: before a writer stops (fenced by a later object's write, or for lost bytes),
    /// an object its Complete made whole in S3 must count neither as lost nor as unflushed:
    /// the abort that follows cannot undo it, and bytes handed back would be appended twice.
    pub(super) fn await_finish(&mut self, index: &mut Index) {
        let Some(job) = self.objects.front_mut().and_then(|o| o.finish.take()) else {
            return;
        };
        if let Ok(etag) = job.join() {
            self.finished(index, etag);
        }
    }

    /// The oldest object is whole in S3 with ETag `etag`, as far as its final upload took
    /// it. After a multipart upload, or once it is large enough to append to by copy, its
    /// bytes leave memory and reads go to S3.
    pub(super) fn finished(&mut self, index: &mut Index, etag: String) {
        let append_by_copy = self.streaming.append_by_copy;
        let is_tail = self.objects.len() == 1;
        let seal = self.objects.front().map_or(self.seal_bytes, Object::seal);
        let reserve = self.streaming.part_size.min(seal);
        self.end_seen = Instant::now();
        let Some(object) = self.objects.front_mut() else {
            return;
        };
        object.etag = Some(etag);
        object.recorded = true;
        if self.streaming.appends {
            // What the append sent is in S3, and leaves memory; what was written meanwhile
            // stays.
            let sent = std::mem::take(&mut object.sending);
            let left = object.buf.len() - sent;
            let mut rest = (self.pool).take(if is_tail { reserve.max(left) } else { left });
            rest.extend_from_slice(&object.buf[sent..]);
            let old = std::mem::replace(&mut object.buf, Arc::new(rest));
            object.released += sent;
            object.mirrored = 0;
            index.cover(object.seq, object.released as u64);
            self.pool.give(old);
            return;
        }
        let total = object.len();
        let upload = object.upload.take();
        let completed = match &upload {
            // The next flush sends the whole object again, so its parts' bytes go back to
            // memory, ahead of those written after the upload closed. Without appending by
            // copy, no part is ever let go.
            Some(upload) if append_by_copy.is_none() => {
                let mut whole = Vec::with_capacity(total);
                for part in &upload.parts {
                    if let Source::Bytes(bytes) = &part.source {
                        whole.extend_from_slice(bytes);
                    }
                }
                object.mirrored = whole.len();
                whole.extend_from_slice(&object.buf);
                object.buf = Arc::new(whole);
                return;
            }
            // Bytes written after a failed flush closed the upload are not in it: they stay.
            Some(upload) => upload.parts.iter().map(|p| p.len).sum::<usize>(),
            None if append_by_copy.is_some_and(|from| total >= from) => total,
            None => {
                object.mirrored = object.buf.len();
                return;
            }
        };
        // What is left in `buf` is what the upload lacked.
        let unsent = total - completed;
        // Only the tail is written to again: a sealed object needs no room.
        let mut rest = self
            .pool
            .take(if is_tail { reserve.max(unsent) } else { unsent });
        rest.extend_from_slice(&object.buf[object.buf.len() - unsent..]);
        let old = std::mem::replace(&mut object.buf, Arc::new(rest));
        object.released = completed;
        object.mirrored = 0;
        index.cover(object.seq, completed as u64);
        let parts = upload.into_iter().flat_map(|u| u.parts);
        for bytes in parts.filter_map(|p| p.source.into_bytes()).chain([old]) {
            self.pool.give(bytes);
        }
    }
}
