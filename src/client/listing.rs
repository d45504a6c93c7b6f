//! Listing: the stream's objects, and the multipart uploads left open on them.

use s3::Bucket;
use s3::command::Command;
use s3::error::S3Error;
use s3::serde_types::{ListBucketResult, Object as Listed};
use ureq::http::HeaderMap;

use super::open::FirstPage;
use super::{S3Client, xml_text, xml_unescape};
use crate::Error;
use crate::layout::{Object, PendingUpload};

impl S3Client {
    /// The stream's objects after `after` (all of them for `None`), in order, across as many
    /// listing pages as there are.
    pub(crate) fn list(&self, after: Option<u64>) -> Result<Vec<Object>, Error> {
        let prefix = self.layout.prefix();
        // A directory bucket refuses `start-after`: the keys before are listed too, and dropped.
        let start_after = (after.filter(|_| self.sessions.is_none())).map(|seq| self.key(seq));
        let mut token = None;
        let mut objects = Vec::new();
        loop {
            let page = self.request("LIST", prefix, 0, |bucket| {
                self.list_page(bucket, token.clone(), start_after.clone(), None)
            })?;
            objects.extend(self.objects(page.contents));
            match page.next_continuation_token {
                Some(next) if page.is_truncated => token = Some(next),
                _ => break,
            }
        }
        // Lexicographic order is numeric order for fixed-width keys, but not every server sorts.
        objects.sort_by_key(|s| s.seq);
        objects.retain(|s| after.is_none_or(|after| s.seq > after));
        Ok(objects)
    }

    /// One listing page of at most `max` keys (S3 sends 1,000 at most) of the stream's objects
    /// after `after` (from the first for `None`), in order, and whether keys follow the page.
    pub(crate) fn list_page_after(
        &self,
        after: Option<u64>,
        max: usize,
    ) -> Result<(Vec<Object>, bool), Error> {
        if self.is_directory() {
            // A directory bucket lists in no promised order, and refuses `start-after`: its
            // page is the whole listing after `after`.
            return Ok((self.list(after)?, false));
        }
        let prefix = self.layout.prefix();
        let start_after = after.map(|seq| self.key(seq));
        let page = self.request("LIST", prefix, 0, |bucket| {
            self.list_page(bucket, None, start_after.clone(), Some(max))
        })?;
        let more = page.is_truncated && page.next_continuation_token.is_some();
        let mut objects: Vec<Object> = self.objects(page.contents).collect();
        objects.sort_by_key(|s| s.seq);
        Ok((objects, more))
    }

    /// One page of at most `max` keys of the stream's prefix after key `after` (from the first
    /// for `None`), for the stream's first object: the first of its objects on the page.
    pub(super) fn first_page(&self, after: Option<String>, max: usize) -> Result<FirstPage, Error> {
        let prefix = self.layout.prefix();
        let page = self.request("LIST", prefix, 0, |bucket| {
            self.list_page(bucket, None, after.clone(), Some(max))
        })?;
        let (more, last) = (
            page.is_truncated,
            page.contents.last().map(|o| o.key.clone()),
        );
        match (self.objects(page.contents).min_by_key(|s| s.seq), last) {
            (None, Some(last)) if more => Ok(FirstPage::After(last)),
            (first, _) => Ok(FirstPage::Found(first)),
        }
    }

    /// The stream's objects among `listed`: keys of its layout only.
    fn objects(&self, listed: Vec<Listed>) -> impl Iterator<Item = Object> {
        listed.into_iter().filter_map(|object| {
            Some(Object {
                seq: self.layout.seq(&object.key)?,
                key: object.key,
                // Known only from the first object's metadata: the caller sets it.
                start: 0,
                size: object.size,
                last_modified: object.last_modified,
            })
        })
    }

    /// The sequence number of the first of the stream's objects after `seq`, if there is one:
    /// one LIST of one key.
    pub(crate) fn first_after(&self, seq: u64) -> Result<Option<u64>, Error> {
        if self.is_directory() {
            // A directory bucket lists in no promised order, and refuses `start-after`.
            return Ok(self.list(Some(seq))?.first().map(|s| s.seq));
        }
        let prefix = self.layout.prefix();
        let after = Some(self.key(seq));
        let page = self.request("LIST", prefix, 0, |bucket| {
            self.list_page(bucket, None, after.clone(), Some(1))
        })?;
        Ok((page.contents.iter()).find_map(|object| self.layout.seq(&object.key)))
    }

    /// The first of the stream's objects after `seq` (one LIST of one key), with the start
    /// it records (one HEAD), if there is one.
    pub(crate) fn next_after(&self, seq: u64) -> Result<Option<(u64, Option<u64>)>, Error> {
        let Some(next) = self.first_after(seq)? else {
            return Ok(None);
        };
        match self.stat(next) {
            Ok(head) => Ok(Some((next, head.start))),
            // Trimmed since it was listed: it was there, which says enough.
            Err(Error::Status { status: 404, .. }) => Ok(Some((next, None))),
            Err(err) => Err(err),
        }
    }

    /// One page (ListObjectsV2) of the keys under the stream's prefix.
    pub(super) fn list_page(
        &self,
        bucket: &Bucket,
        continuation_token: Option<String>,
        start_after: Option<String>,
        max_keys: Option<usize>,
    ) -> Result<ListBucketResult, S3Error> {
        let command = Command::ListObjectsV2 {
            prefix: self.layout.prefix().to_owned(),
            delimiter: None,
            continuation_token,
            start_after,
            max_keys,
        };
        let text = (self
            .wire
            .send(bucket, "/", command, None, &HeaderMap::new())?)
        .text()?;
        Ok(quick_xml::de::from_str(&text)?)
    }

    /// The multipart uploads to the stream's objects that were neither completed nor aborted,
    /// oldest object first.
    pub(crate) fn list_uploads(&self) -> Result<Vec<PendingUpload>, Error> {
        let mut uploads: Vec<PendingUpload> = (self.open_uploads(self.layout.prefix())?)
            .into_iter()
            .filter_map(|open| {
                let seq = self.layout.seq(&open.key)?;
                Some(PendingUpload {
                    key: open.key,
                    seq,
                    initiated: open.initiated,
                })
            })
            .collect();
        uploads.sort_by(|a, b| (a.seq, &a.initiated).cmp(&(b.seq, &b.initiated)));
        Ok(uploads)
    }

    /// Whether upload `id` to `key` is still open: `Ok(false)` once it was aborted (by a
    /// lifecycle rule or another process) or completed. A part sent to a vanished upload may
    /// never get its answer (the server answers and closes before the body is sent), so this
    /// is how such a failure is told apart from a passing one.
    pub(crate) fn upload_is_open(&self, key: &str, id: &str) -> Result<bool, Error> {
        Ok(self
            .open_uploads(key)?
            .iter()
            .any(|u| u.key == key && u.id == id))
    }

    /// The uploads open under `prefix`, across as many pages as there are. The answer is read
    /// here: rust-s3's parser requires elements that some servers leave out (SeaweedFS sends
    /// no `StorageClass`).
    fn open_uploads(&self, prefix: &str) -> Result<Vec<OpenUpload>, Error> {
        let mut uploads = Vec::new();
        let mut markers: (Option<String>, Option<String>) = (None, None);
        loop {
            let body = self.request("LIST-UPLOADS", prefix, 0, |bucket| {
                let command = Command::ListMultipartUploads {
                    prefix: Some(prefix),
                    delimiter: None,
                    key_marker: markers.0.clone(),
                    upload_id_marker: markers.1.clone(),
                    max_uploads: None,
                };
                self.wire
                    .send(bucket, "/", command, None, &HeaderMap::new())?
                    .text()
            })?;
            for upload in body.split("<Upload>").skip(1) {
                uploads.push(OpenUpload {
                    key: xml_unescape(&xml_text(upload, "Key")),
                    id: xml_unescape(&xml_text(upload, "UploadId")),
                    initiated: xml_text(upload, "Initiated"),
                });
            }
            let next = Some(xml_unescape(&xml_text(&body, "NextKeyMarker")));
            let next_id = Some(xml_text(&body, "NextUploadIdMarker")).filter(|id| !id.is_empty());
            // A truncated page must move the cursor, or the listing would never end.
            if xml_text(&body, "IsTruncated") != "true"
                || (next.clone(), next_id.clone()) == markers
            {
                break;
            }
            markers = (next, next_id);
        }
        Ok(uploads)
    }
}

struct OpenUpload {
    key: String,
    id: String,
    initiated: String,
}
