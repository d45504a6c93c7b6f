//! Deleting many of the stream's objects at once: DeleteObjects, 1,000 keys a request.

use s3::command::Command;
use s3::serde_types::{DeleteObjectsRequest, ObjectIdentifier};
use ureq::http::HeaderMap;

use super::{S3Client, xml_text, xml_unescape};
use crate::Error;

/// The most keys S3 takes in one DeleteObjects.
const KEYS: usize = 1000;

impl S3Client {
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
