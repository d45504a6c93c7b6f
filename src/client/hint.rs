//! The hint: one small object beside the stream's objects that names a recent one, so that a
//! new handle finds the end of a long stream without listing its history.
//!
//! A writer rewrites it each time it creates an object (the object's sequence number and the
//! start it records), after the object is in S3: one small PUT per object, none per flush. A
//! handle reads it as it opens (one GET, beside the bucket's check: `open.rs`), then lists from
//! the object it names on (one `LIST start-after`, a page per 1,000 objects written since)
//! while it asks that object where it starts (one HEAD, at once): the end in 2 round trips at
//! any length.
//!
//! A hint is never a source of truth: an object belongs to the stream because a listing shows
//! it, and it starts where it records. A stale hint (a writer of 0.2 wrote since, or the last
//! rewrite failed) costs a longer listing; one naming an object that is gone only means the
//! listing starts at the next one. A hint that is missing (a stream of 0.2: the next object a
//! writer creates writes one), that does not parse, or that names another stream, or an object
//! past the end, is ignored, and the stream is listed whole as before.
//!
//! A directory bucket (S3 Express One Zone) has none: it refuses `start-after`, so every
//! listing there is whole whatever a hint would say.
//!
//! Its key, `dir/name-s3syncr-hint.ext`, is under the stream's listing prefix, but no stream
//! object has it: those end in 20 digits before the extension ([`Layout::seq`] skips it).
//!
//! [`Layout::seq`]: crate::layout::Layout

use s3::command::Command;
use ureq::http::HeaderMap;

use super::{OCTETS, S3Client};
use crate::Error;
use crate::store::{Crc, Hint};

/// The first line of a hint: its format, version 1.
const MAGIC: &str = "s3-syncr hint 1";

impl S3Client {
    /// The stream's hint, if there is one that parses and is this stream's.
    pub(crate) fn read_hint(&self) -> Result<Option<Hint>, Error> {
        if let Some(hint) = self.opened.hint() {
            return Ok(hint);
        }
        if self.is_directory() {
            // A directory bucket refuses `start-after`: every listing is whole, hint or not.
            return Ok(None);
        }
        let key = self.layout.hint_key();
        let body = self.request("GET", &key, 0, |bucket| {
            let mut answer =
                (self.wire).send(bucket, &key, Command::GetObject, None, &HeaderMap::new())?;
            answer.bytes()
        });
        let body = match body {
            Ok(body) => body,
            Err(err) if err.is_missing() => return Ok(None),
            Err(err) => return Err(err),
        };
        let hint = parse(&String::from_utf8_lossy(&body), &key);
        if hint.is_none() {
            log::debug!("{key}: not a hint of this stream; ignored");
        }
        Ok(hint)
    }

    /// Rewrites the stream's hint to name `hint`: unconditional, as any recent object serves.
    pub(crate) fn write_hint(&self, hint: Hint) -> Result<(), Error> {
        if self.is_directory() {
            return Ok(());
        }
        let key = self.layout.hint_key();
        let body = format!(
            "{MAGIC}\nkey {key}\nseq {}\nstart {}\n",
            hint.seq, hint.start
        );
        let mut headers = HeaderMap::new();
        Crc::of(body.as_bytes()).add_to(&mut headers);
        self.request("PUT", &key, body.len() as u64, |bucket| {
            let command = Command::PutObject {
                content: &[],
                content_type: OCTETS,
                custom_headers: Some(headers.clone()),
                multipart: None,
            };
            let answer = (self.wire).send(
                bucket,
                &key,
                command,
                Some(body.as_bytes()),
                &HeaderMap::new(),
            )?;
            answer.finish();
            Ok(())
        })
    }
}

/// The hint in `body`, if it is one, written for `key`.
fn parse(body: &str, key: &str) -> Option<Hint> {
    let mut lines = body.lines();
    let field = |line: Option<&str>, name: &str| -> Option<String> {
        let (found, value) = line?.split_once(' ')?;
        (found == name).then(|| value.to_owned())
    };
    if lines.next()? != MAGIC || field(lines.next(), "key")? != key {
        return None;
    }
    Some(Hint {
        seq: field(lines.next(), "seq")?.parse().ok()?,
        start: field(lines.next(), "start")?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_hint_written_for_this_key_parses() {
        let key = "d/n-s3syncr-hint.log";
        let body = format!("{MAGIC}\nkey {key}\nseq 12\nstart 3400\n");
        assert_eq!(
            parse(&body, key),
            Some(Hint {
                seq: 12,
                start: 3400
            })
        );
        assert_eq!(
            parse(&body, "d/other-s3syncr-hint.log"),
            None,
            "another stream's"
        );
        for foreign in [
            "",
            "hello",
            "s3-syncr hint 2\nkey d/n-s3syncr-hint.log\nseq 1\nstart 0\n",
            "s3-syncr hint 1\nkey d/n-s3syncr-hint.log\nseq x\nstart 0\n",
            "s3-syncr hint 1\nkey d/n-s3syncr-hint.log\nseq 1\n",
            "s3-syncr hint 1\nkey d/n-s3syncr-hint.log\nstart 0\nseq 1\n",
        ] {
            assert_eq!(parse(foreign, key), None, "{foreign:?}");
        }
    }
}
