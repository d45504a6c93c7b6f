//! Deleting the stream's objects: one DELETE, or DeleteObjects, 1,000 keys a request.

use s3::command::Command;
use s3::serde_types::{DeleteObjectsRequest, ObjectIdentifier};
use ureq::http::HeaderMap;

use super::{S3Client, wire, xml_text, xml_unescape};
use crate::Error;

/// The most keys S3 takes in one DeleteObjects.
const KEYS: usize = 1000;

impl S3Client {
    /// Deletes object `seq`. Deleting a missing object succeeds in S3, so a retry after a lost
    /// answer does too; a server that answers 404 instead is taken at its word as well.
    pub(crate) fn delete(&self, seq: u64) -> Result<(), Error> {
        let key = self.key(seq);
        let result = self.request("DELETE", &key, 0, |bucket| {
            let command = Command::DeleteObject;
            self.wire
                .send(bucket, &key, command, None, &HeaderMap::new())
                .map(wire::Answer::finish)
        });
        match result {
            Err(Error::Status { status: 404, .. }) => Ok(()),
            other => other,
        }
    }

    /// Deletes objects `seqs`, 1,000 a request (quiet: the answer lists failures only). A
    /// missing object is deleted as well, so a retry after a lost answer succeeds; a key S3
    /// could not delete is an [`Error::Status`] naming it, with the code S3 gave. A server
    /// without DeleteObjects (501) gets one DELETE a key.
    pub(crate) fn delete_all(&self, seqs: &[u64]) -> Result<(), Error> {
        match self.delete_batches(seqs) {
            Err(Error::Status { status: 501, .. }) => {
                seqs.iter().try_for_each(|&seq| self.delete(seq))
            }
            other => other,
        }
    }

    fn delete_batches(&self, seqs: &[u64]) -> Result<(), Error> {
        for batch in seqs.chunks(KEYS) {
            let objects: Vec<ObjectIdentifier> = (batch.iter())
                .map(|&seq| ObjectIdentifier {
                    key: self.key(seq),
                    version_id: None,
                })
                .collect();
            let first = objects.first().map(|o| o.key.clone()).unwrap_or_default();
            let body = self.request("DELETE-OBJECTS", &first, 0, |bucket| {
                let data = DeleteObjectsRequest {
                    objects: objects.clone(),
                    quiet: true,
                };
                let command = Command::DeleteObjects { data };
                self.wire
                    .send(bucket, "/", command, None, &HeaderMap::new())?
                    .text()
            })?;
            if let Some(failed) = body.split("<Error>").nth(1) {
                let code = xml_text(failed, "Code");
                return Err(Error::Status {
                    op: "DELETE",
                    key: xml_unescape(&xml_text(failed, "Key")),
                    status: if code == "AccessDenied" { 403 } else { 500 },
                    code,
                    message: xml_text(failed, "Message"),
                });
            }
        }
        Ok(())
    }
}
