//! Overwriting the tail: one PUT of the whole object, or, once the object in S3 is large, an
//! append by copy: a multipart upload to the same key whose first parts are a server-side copy
//! of the object as it stands (one part per 5 GiB, S3's largest copy), and whose last part is
//! the new bytes alone (the upload's requests are in `upload.rs`).

use super::put::Settled;
use super::{Expect, Meta, S3Client};
use crate::Error;

/// How many times an append by copy starts again after its upload vanished (aborted by a
/// lifecycle rule or another process): its bytes are all in memory, so nothing is lost.
const VANISHED_RETRIES: u32 = 3;

impl S3Client {
    /// Overwrites object `seq`, which records `meta`, with its first `released`
    /// bytes (which S3 has and the caller no longer keeps) followed by `body`, of which S3
    /// holds the first `mirrored` (as the object `expect` names); returns its new ETag.
    ///
    /// Once S3 holds [`Options::append_by_copy`](crate::Options::append_by_copy) bytes of it,
    /// only the bytes S3 lacks are sent; below it, or with appending by copy turned off, the
    /// whole body is PUT (`released` is then 0).
    pub(crate) fn overwrite(
        &self,
        seq: u64,
        meta: Meta,
        released: usize,
        body: &[u8],
        mirrored: usize,
        expect: Expect<'_>,
    ) -> Result<String, Error> {
        let s3_size = released + mirrored;
        if self.is_directory() {
            return self.append_at_offset(seq, meta, s3_size as u64, &body[mirrored..], expect);
        }
        match expect {
            Expect::Etag(etag)
                if released > 0
                    || (self
                        .options
                        .append_by_copy
                        .is_some_and(|from| s3_size >= from)
                        && mirrored < body.len()) =>
            {
                self.append(seq, meta, etag, s3_size, &body[mirrored..])
            }
            _ => self.put(seq, meta, body, expect),
        }
    }

    /// Appends `new` to object `seq`, whose ETag is `etag` and whose first `s3_size` bytes are
    /// this handle's, by a multipart upload: the first parts copy exactly those bytes, on the
    /// condition that the object is still `etag`, the last is `new`, and Complete carries
    /// `If-Match: <etag>` too, so that another writer's change in between fences this one. On
    /// failure the upload is aborted (best effort) and nothing else changed.
    ///
    /// A write of this handle's whose answer was lost may have moved the object on: the
    /// append then builds on it. An upload that vanished is started again.
    fn append(
        &self,
        seq: u64,
        meta: Meta,
        etag: &str,
        s3_size: usize,
        new: &[u8],
    ) -> Result<String, Error> {
        let key = self.key(seq);
        let total = s3_size + new.len();
        let (mut etag, mut base) = (etag.to_owned(), s3_size);
        let mut vanished = 0;
        loop {
            let err = match self.append_once(&key, meta, &etag, base, &new[base - s3_size..]) {
                Ok(etag) => return Ok(etag),
                Err(err) if err.is_upload_gone() && vanished < VANISHED_RETRIES => {
                    vanished += 1;
                    log::warn!("{key}: the upload vanished; starting it again");
                    continue;
                }
                Err(err @ Error::Fenced { .. }) => err,
                Err(err) => return Err(err),
            };
            match self.settle(&key, total as u64)? {
                Settled::Done(etag) => return Ok(etag),
                Settled::Moved { etag: moved, size }
                    if moved != etag && (base..total).contains(&(size as usize)) =>
                {
                    (etag, base) = (moved, size as usize);
                }
                _ => return Err(err),
            }
        }
    }

    /// One attempt of [`append`](S3Client::append): `s3_size` bytes copied, `new` sent.
    fn append_once(
        &self,
        key: &str,
        meta: Meta,
        etag: &str,
        s3_size: usize,
        new: &[u8],
    ) -> Result<String, Error> {
        let id = self.create_upload(key, meta)?;
        // The server copies and assembles the whole object: deadlines in proportion.
        let size = (s3_size + new.len()) as u64;
        let result = (self.copy(key, &id, s3_size as u64, etag)).and_then(|mut parts| {
            let source = (parts.iter().find_map(|p| p.source.clone())).unwrap_or_default();
            let number = parts.len() as u32 + 1;
            parts.push(self.upload_part(key, &id, number, new)?);
            self.complete(key, &id, &parts, Expect::Etag(&source), size)
        });
        if result.is_err() {
            self.abort(key, &id);
        }
        result
    }
}
