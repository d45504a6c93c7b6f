//! The stream's two ends in a few requests, whatever its object count: what `s3-syncr stat`
//! shows unless asked for the whole listing.

use super::Storage;
use crate::index::Index;
use crate::{Ends, Error};

impl Storage {
    /// Where the stream starts and ends in S3, and its first and last objects (see [`Ends`]);
    /// `None` for a stream with no object. This handle's unflushed bytes are not counted.
    ///
    /// The stream is not listed whole: the end is found as [`len`](Storage::len) finds it
    /// (on a new handle, through the stream's hint: the GET that opening sent, one LIST page
    /// and one HEAD, at any object count), the front by a LIST of one key (the one that
    /// checked the bucket, on a new handle) and the first object's HEAD for its start. So
    /// objects missing in the middle (gaps) and their count are not seen: that takes
    /// [`listing`](Storage::listing).
    ///
    /// ```
    /// # let server = s3_syncr_test_server::Server::start();
    /// # let bucket = server.new_bucket();
    /// use std::io::Write;
    /// use s3_syncr::{Options, Storage};
    ///
    /// let options = Options::builder().with_seal_size(1 << 20).build()?;
    /// let mut log = Storage::new(bucket.clone(), "app.log", options)?;
    /// for _ in 0..3 {
    ///     log.write_all(&vec![b'x'; 1 << 20])?;
    /// }
    /// log.write_all(b"tail")?;
    /// log.flush()?;
    /// log.trim(1 << 20)?;
    /// let ends = Storage::new(bucket, "app.log", Options::default())?.ends()?.unwrap();
    /// assert_eq!((ends.first, ends.end), (1 << 20, (3 << 20) + 4));
    /// assert_eq!((ends.first_seq, ends.last_seq), (1, 3));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ends(&mut self) -> Result<Option<Ends>, Error> {
        // A writer's index ends where its own objects begin: S3's ends are looked at apart.
        let mut apart = Index::default();
        let index = match self.writer.started() {
            true => &mut apart,
            false => &mut self.index,
        };
        index.refresh(&*self.client)?;
        index.refresh_front(&*self.client, true)?;
        let (Some(first), Some(last)) = (index.first_entry(), index.last()) else {
            return Ok(None);
        };
        Ok(Some(Ends {
            first: first.start,
            end: last.end(),
            first_seq: first.seq,
            last_seq: last.seq,
            last_key: self.client.key(last.seq),
            last_size: last.size,
        }))
    }
}
