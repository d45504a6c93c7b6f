//! Opening a stream: the bucket's check and the stream's hint in one round trip, and what
//! they found kept for the handle's first listing and its first look at the front.
//!
//! The check is a LIST of the stream's prefix for one key: in stream order, that key is the
//! first object's when the stream has one (the hint's key sorts after every object's). The
//! hint's GET goes at once on another connection; it cannot check the bucket itself (s3s-fs
//! answers a GET in a missing bucket with `NoSuchKey`). What the two found is used once, and
//! only within [`FRESH`] of the open: an answer is never taken for more than it says, the first
//! object is asked where it starts (a HEAD that a trim since fails) and the hint is only where
//! listing starts, so an old one costs pages, not correctness.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::S3Client;
use crate::Error;
use crate::job;
use crate::layout::Object;
use crate::store::Hint;

/// How long after the open its answers serve: a handle used later asks again, so that the
/// hint it lists from names an object written since at most this long ago.
const FRESH: Duration = Duration::from_secs(5);

/// The answers of the open, each taken once.
#[derive(Default)]
pub(super) struct Opened(Mutex<Option<Answers>>);

struct Answers {
    at: Instant,
    /// The stream's first object (`Some(None)`: it has none), if the check's one key told.
    first: Option<Option<Object>>,
    /// The hint, if its GET answered.
    hint: Option<Option<Hint>>,
}

impl Opened {
    /// Takes one of the answers, if the open got it and it is fresh.
    fn take<T>(&self, field: impl FnOnce(&mut Answers) -> Option<T>) -> Option<T> {
        let mut answers = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        answers
            .as_mut()
            .filter(|answers| answers.at.elapsed() < FRESH)
            .and_then(field)
    }

    pub(super) fn hint(&self) -> Option<Option<Hint>> {
        self.take(|answers| answers.hint.take())
    }

    pub(super) fn first(&self) -> Option<Option<Object>> {
        self.take(|answers| answers.first.take())
    }
}

/// A page of the stream's prefix, as [`S3Client::first_page`] reads it for its first object.
pub(super) enum FirstPage {
    /// The first object, or `None`: no key follows.
    Found(Option<Object>),
    /// None of the stream's objects on the page, but keys after this one.
    After(String),
}

impl S3Client {
    /// Fails with [`Error::BucketNotFound`] (or the access error) unless the bucket answers,
    /// and reads the stream's hint meanwhile: two requests, one round trip.
    pub(crate) fn open(&self) -> Result<(), Error> {
        let (first, hint) = job::both(self, || self.check_bucket(), || self.read_hint());
        let first = first?;
        *self.opened.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(Answers {
            at: Instant::now(),
            first,
            // A GET that failed is sent again when the hint is needed, and fails there.
            hint: hint.ok(),
        });
        Ok(())
    }

    /// The stream's first object as the open's check found it (`Some(None)`: none), if it told
    /// and is fresh; once. Objects may have been deleted or written since: see
    /// [`Index::refresh_front`](crate::index::Index::refresh_front).
    pub(crate) fn opened_first(&self) -> Option<Option<Object>> {
        self.opened.first()
    }

    /// The stream's first object (its start unknown: 0 here), if it has one: one LIST of one
    /// key. Keys of other names sorting before the stream's are listed past, a page at a time.
    pub(crate) fn first_object(&self) -> Result<Option<Object>, Error> {
        if self.is_directory() {
            // A directory bucket lists in no promised order.
            return Ok(self.list(None)?.into_iter().next());
        }
        let mut after = None;
        loop {
            let max = if after.is_none() { 1 } else { 1000 };
            match self.first_page(after, max)? {
                FirstPage::Found(first) => return Ok(first),
                FirstPage::After(key) => after = Some(key),
            }
        }
    }
}
