//! The stream itself: [`Storage`] and its read, write and seek state.

use std::fmt;
use std::io::{self, BufRead, Read, Write};
use std::sync::Arc;
use std::time::Instant;

use s3::Bucket;

use crate::client::S3Client;
use crate::index::Index;
use crate::layout::{Layout, Location};
use crate::reader::Reader;
use crate::store::Client;
use crate::writer::{Streaming, Writer};
use crate::{Error, Options};

mod close;
mod ends;
mod follow;
mod retention;
mod seek;

pub use close::CloseError;

/// An append-only byte stream kept in S3, as one `Read + Write + Seek + BufRead` handle.
///
/// Writes are buffered in memory and always append to the end of the stream;
/// [`flush`](Write::flush) makes every byte written so far durable by overwriting the tail object
/// (sending only the new bytes once the tail is large, see
/// [`OptionsBuilder::with_append_by_copy`](crate::OptionsBuilder::with_append_by_copy)); once
/// the tail holds at least [`Options::seal_size`] bytes it is sealed and later bytes go to a
/// new object. Reads see every object in order, then this handle's
/// unflushed bytes; [`Seek`](std::io::Seek) moves the read position anywhere from the first offset still in S3
/// (0 until older objects are deleted: offsets are absolute) to the stream's length.
///
/// ```
/// # let server = s3_syncr_test_server::Server::start();
/// # let bucket = server.new_bucket();
/// use std::io::{Read, Seek, SeekFrom, Write};
/// use s3_syncr::{Options, Storage};
///
/// let mut log = Storage::new(bucket, "logs/app.log", Options::default())?;
/// log.write_all(b"first line\n")?;
/// log.write_all(b"second line\n")?;
/// log.flush()?; // both lines are now in S3
///
/// log.seek(SeekFrom::Start(11))?;
/// let mut second = String::new();
/// log.read_to_string(&mut second)?;
/// assert_eq!(second, "second line\n");
/// assert_eq!(log.len()?, 23);
/// log.close()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Storage {
    client: Arc<Client>,
    /// The objects before the writer's (all known objects while nothing was written).
    index: Index,
    writer: Writer,
    reader: Reader,
    /// Whether the read position was set: a new handle's starts at the first offset, once that
    /// is known.
    positioned: bool,
    /// Set by `close` and `discard`, so that the drop that ends them flushes nothing.
    closed: bool,
    /// The size at which an object is sealed: a follower then looks for the next one.
    seal: u64,
    /// The seal size a HEAD found for the last object (its sequence number first), for one
    /// that no GET of this handle brought bytes of.
    seal_asked: Option<(u64, u64)>,
    /// When the objects were listed last.
    listed: Option<Instant>,
    /// When a follower polls the end next.
    pace: follow::Pace,
}

impl Storage {
    /// Opens the stream at `location`, `s3://bucket/dir/name.ext` or the original package's
    /// `bucket/dir/name.ext`, with credentials, region and endpoint from the standard AWS
    /// environment:
    ///
    /// - `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, else the shared
    ///   credentials file (`AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`, profile
    ///   `AWS_PROFILE` or `default`);
    /// - `AWS_REGION` or `AWS_DEFAULT_REGION`, else the profile's `region` in the shared config
    ///   file (`AWS_CONFIG_FILE` or `~/.aws/config`), else `us-east-1`;
    /// - `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` for S3-compatible servers, which are then
    ///   addressed path-style.
    ///
    /// The location and options are checked before any request; then one listing request checks
    /// that the bucket exists (it is never created), while a GET reads the stream's hint (see
    /// the crate's Layout), at once. Nothing else is read until it is needed.
    ///
    /// ```no_run
    /// use s3_syncr::{Options, Storage};
    ///
    /// let log = Storage::open("s3://my-bucket/logs/app.log", Options::default())?;
    /// # Ok::<(), s3_syncr::Error>(())
    /// ```
    pub fn open(location: &str, options: Options) -> Result<Storage, Error> {
        Storage::open_with_env(location, options, |key| std::env::var(key).ok())
    }

    /// Like [`open`](Storage::open), with the AWS variables read through `var` instead of the
    /// process environment: for configuration that comes from flags or files, or that overrides
    /// part of the environment.
    ///
    /// ```
    /// # let server = s3_syncr_test_server::Server::start();
    /// # let location = format!("s3://{}/logs/app.log", server.new_bucket().name());
    /// # let (access_key, secret_key) = server.keys();
    /// use s3_syncr::{Options, Storage};
    ///
    /// let endpoint = server.endpoint(); // from a --endpoint flag, say
    /// let log = Storage::open_with_env(&location, Options::default(), |key| match key {
    ///     "AWS_ENDPOINT_URL" => Some(endpoint.to_owned()),
    /// #   "AWS_ACCESS_KEY_ID" => Some(access_key.to_owned()),
    /// #   "AWS_SECRET_ACCESS_KEY" => Some(secret_key.to_owned()),
    ///     _ => std::env::var(key).ok(),
    /// })?;
    /// # Ok::<(), s3_syncr::Error>(())
    /// ```
    pub fn open_with_env(
        location: &str,
        options: Options,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Storage, Error> {
        let location = Location::parse(location)?;
        let bucket = crate::env::bucket(&location.bucket, var)?;
        Storage::new(bucket, &location.name, options)
    }

    /// Checks `location` as [`open`](Storage::open) does, reading no environment and sending
    /// no request: to refuse a malformed location before anything else happens.
    ///
    /// ```
    /// use s3_syncr::Storage;
    ///
    /// assert!(Storage::check_location("s3://my-bucket/logs/app.log").is_ok());
    /// assert!(Storage::check_location("s3://my-bucket/logs//app.log").is_err());
    /// ```
    pub fn check_location(location: &str) -> Result<(), Error> {
        Location::parse(location).map(drop)
    }

    /// Checks a stream name as [`new`](Storage::new) does, sending no request.
    ///
    /// ```
    /// use s3_syncr::Storage;
    ///
    /// assert!(Storage::check_name("logs/app.log").is_ok());
    /// assert!(Storage::check_name("logs/").is_err());
    /// ```
    pub fn check_name(name: &str) -> Result<(), Error> {
        Layout::new(name).map(drop)
    }

    /// Opens stream `name` in a bucket the caller built: for credentials, endpoints or
    /// addressing that the environment does not cover.
    ///
    /// The bucket is rust-s3's [`Bucket`], of the version this crate is built
    /// with: name it through the re-export [`s3_syncr::s3`](crate::s3), so that no other
    /// version of rust-s3 need be in the caller's `Cargo.toml`. rust-s3 only names the bucket,
    /// signs and parses here; every request goes through this crate's own HTTP client, so
    /// rust-s3's transport settings (its timeouts, its TLS features) do not apply: see
    /// [`Options`].
    ///
    /// ```
    /// # let server = s3_syncr_test_server::Server::start();
    /// use s3_syncr::s3::{Bucket, Region, creds::Credentials};
    /// use s3_syncr::{Options, Storage};
    ///
    /// let region = Region::Custom {
    ///     region: "us-east-1".into(),
    ///     endpoint: server.endpoint().into(), // e.g. "http://127.0.0.1:9000"
    /// };
    /// # let (access_key, secret_key) = server.keys();
    /// # let name = server.new_bucket().name();
    /// let credentials = Credentials::new(Some(access_key), Some(secret_key), None, None, None)?;
    /// let bucket = Bucket::new(&name, region, credentials)?.with_path_style();
    /// let log = Storage::new(*bucket, "logs/app.log", Options::default())?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(bucket: Bucket, name: &str, options: Options) -> Result<Storage, Error> {
        let layout = Layout::new(name)?;
        let client = S3Client::new(bucket, layout, options.clone())?;
        client.open()?;
        Ok(Storage::with_client(Arc::new(client), &options))
    }

    /// A handle that sends its requests through `client`, which was made with `options`.
    pub(crate) fn with_client(client: Arc<Client>, options: &Options) -> Storage {
        let reader = Reader::new(
            options.read_chunk,
            options.read_ahead,
            options.verify_reads,
            options.retry_attempts,
            options.stepped,
        );
        let seal_size = options.seal_size;
        let appends = client.appends();
        let streaming = Streaming {
            // Appended bytes leave memory at once: reads fetch them from S3.
            append_by_copy: if appends {
                Some(0)
            } else {
                options.append_by_copy
            },
            appends,
            part_size: options.part_size,
            write_ahead: options.write_ahead,
            fresh_end: options.fresh_end,
            stepped: options.stepped,
        };
        Storage {
            writer: Writer::new(client.clone(), seal_size, streaming),
            reader,
            client,
            index: Index::default(),
            positioned: false,
            closed: false,
            seal: seal_size as u64,
            seal_asked: None,
            listed: None,
            pace: follow::Pace::default(),
        }
    }

    /// Anchors the offsets and places a new handle's read position at the first offset, with
    /// the one request that needs, once (0 if the stream has no object yet). A stream with no
    /// object yet is not anchored: polling its end lists it until it has one.
    fn position(&mut self) -> Result<u64, Error> {
        if !self.positioned {
            let extend = !self.writer.started();
            if extend && !self.index.anchored() {
                self.relist(Instant::now())?;
            }
            // The end as the hint finds it; the first offset then takes one page more.
            if self.index.known_first().is_none() {
                self.index.list_front(&*self.client, extend)?;
            }
            if self.index.anchored() {
                self.reader.seek(self.index.first());
            }
            // From now on the position is what the caller saw: an empty stream's 0 stays 0 even
            // if objects appear and the oldest of them are deleted.
            self.positioned = true;
        }
        Ok(self.reader.pos)
    }

    /// Fails with [`Error::Trimmed`] if the read position is before the first byte.
    fn check_readable(&mut self) -> Result<(), Error> {
        let pos = self.position()?;
        self.check_kept(pos)
    }

    /// Fails with [`Error::Trimmed`] if `pos` is before the first byte, as the index knows it.
    fn check_kept(&self, pos: u64) -> Result<(), Error> {
        let first = self.index.first();
        match pos < first {
            true => Err(Error::Trimmed {
                requested: pos,
                first,
            }),
            false => Ok(()),
        }
    }

    /// Flushes before a read of this handle's own bytes if memory no longer holds them all:
    /// parts of a tail larger than the write budget that S3 has, but not as an object yet.
    fn complete_for_read(&mut self) -> Result<(), Error> {
        if !self.writer.holds_all() && self.reader.pos >= self.index.end() {
            self.writer.flush(&mut self.index)?;
        }
        Ok(())
    }

    /// The bytes at the read position: from the chunk fetched last, else from this handle's
    /// bytes not yet in S3, else from S3. At the end of what is known, and with no writer to
    /// say where the end is, the end is polled (see [`wait_for_data`](Storage::wait_for_data)), so bytes appended since by any
    /// handle are found. A GET fetches at least `wanted` bytes when it can.
    fn available(&mut self, wanted: usize) -> Result<&[u8], Error> {
        let pos = self.reader.pos;
        if !self.reader.holds_pos() {
            if pos >= self.index.end() && !self.writer.started() {
                self.poll_end()?;
                // The listing may have found the objects up to here trimmed.
                self.check_kept(pos)?;
            }
            if let Some(offset) = pos.checked_sub(self.index.end()) {
                return Ok(self.writer.local_at(offset as usize));
            }
            // Objects never listed (the index was opened at the hint): listed now.
            if self.index.unlisted_at(pos) {
                let extend = !self.writer.started();
                self.index.locate(&*self.client, pos, extend)?;
                self.check_kept(pos)?;
            }
            // Bytes deleted out of order: never skipped, never taken for the end.
            if let Some(seq) = self.index.missing_at(pos) {
                return Err(Error::MissingObject {
                    key: self.client.key(seq),
                });
            }
        }
        match self.reader.fill_buf(&self.client, &self.index, wanted) {
            Ok(bytes) => Ok(bytes),
            Err(err) => {
                let extend = !self.writer.started();
                Err((self.index).explain_deleted(&*self.client, err, pos, extend))
            }
        }
    }

    /// The stream's length: the offset of its end, this handle's bytes not yet in S3
    /// included, as `seek(SeekFrom::End(0))` finds it without moving the read position.
    ///
    /// A handle that has written knows where the stream ends, and asks nothing. One that has
    /// not lists the stream (one request) at every call, so that bytes appended since by other
    /// handles count. Offsets are absolute: deleting the oldest objects does not shorten it.
    ///
    /// ```
    /// # let server = s3_syncr_test_server::Server::start();
    /// # let bucket = server.new_bucket();
    /// use std::io::Write;
    /// use s3_syncr::{Options, Storage};
    ///
    /// let mut log = Storage::new(bucket.clone(), "app.log", Options::default())?;
    /// log.write_all(b"flushed")?;
    /// log.flush()?;
    /// log.write_all(b", and not yet")?;
    /// assert_eq!(log.len()?, 20, "this handle's unflushed bytes count");
    ///
    /// let mut reader = Storage::new(bucket, "app.log", Options::default())?;
    /// assert_eq!(reader.len()?, 7, "only what is in S3");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[allow(
        clippy::len_without_is_empty,
        reason = "offsets are absolute: a trimmed stream holds no byte yet has a length, so \
                  `is_empty` would say either too little or something else than `len() == 0`"
    )]
    pub fn len(&mut self) -> Result<u64, Error> {
        if !self.writer.started() {
            self.index.refresh(&*self.client)?;
        }
        Ok(self.known_len())
    }

    /// The stream's length as this handle knows it, without asking S3.
    fn known_len(&self) -> u64 {
        self.index.end() + self.writer.local_len() as u64
    }

    /// The bytes accepted by `write` that are not in S3 yet: what a failed flush or a fenced
    /// writer would otherwise lose.
    ///
    /// ```
    /// # let server = s3_syncr_test_server::Server::start();
    /// # let bucket = server.new_bucket();
    /// use std::io::Write;
    /// use s3_syncr::{Options, Storage};
    ///
    /// let mut log = Storage::new(bucket, "app.log", Options::default())?;
    /// log.write_all(b"abc")?;
    /// assert_eq!(log.unflushed(), b"abc");
    /// log.flush()?;
    /// assert!(log.unflushed().is_empty());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn unflushed(&self) -> Vec<u8> {
        self.writer.unflushed()
    }
}

impl Write for Storage {
    /// Appends `buf` to the tail object in memory and returns how many bytes it took. The
    /// first write of a handle lists the stream to find its end. Once the tail holds
    /// [`Options::seal_size`], the next write seals it: its last upload goes on in the
    /// background while writing continues in the next object, and it is completed once the
    /// objects before it are. Every [`Options::part_size`] bytes S3 lacks go out as a part of
    /// a multipart upload, on a thread of their own, up to [`Options::write_ahead`] at once.
    /// A write of at most a part is never
    /// split across objects; a larger one is taken as if written in pieces, each ending where
    /// a part or the object does, so that its parts upload while it goes on and it fills
    /// objects to exactly the seal size. A write waits while the writer holds its budget of
    /// bytes. If an upload fails, the write that finds out returns the error and takes
    /// nothing, or, if it took some bytes already, returns their count and the next write
    /// returns the error; the upload is tried again after that, and by a flush.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        Ok(self.writer.write(&mut self.index, buf)?)
    }

    /// Makes every byte written so far durable: completes the sealed objects in order, then, if
    /// any byte was written since the tail's last upload, completes the tail: its multipart
    /// upload if parts went out (the rest as the last part), else one PUT of the whole tail,
    /// or once S3 holds [`Options::append_by_copy`] bytes of it, an append by copy of the new
    /// bytes; otherwise sends nothing. On failure nothing is dropped, and the next flush tries
    /// again.
    fn flush(&mut self) -> io::Result<()> {
        Ok(self.writer.flush(&mut self.index)?)
    }
}

impl BufRead for Storage {
    /// Returns the bytes at the read position: from the chunk fetched last, else from this
    /// handle's bytes not yet in S3, else from a ranged GET (while reading is sequential,
    /// [`Options::read_ahead`] GETs run ahead on threads of their own). At the end of the stream it
    /// polls the end with one request, so bytes appended since by any handle are found; see
    /// [`wait_for_data`](Storage::wait_for_data).
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.check_readable()?;
        self.complete_for_read()?;
        Ok(self.available(0)?)
    }

    fn consume(&mut self, amt: usize) {
        self.reader.pos += amt as u64;
    }
}

impl Read for Storage {
    /// Reads from the read position. `Ok(0)` means the end of the stream as of now: a later
    /// read continues from there with whatever was appended since. An empty `out` sends no
    /// request.
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        self.check_readable()?;
        self.complete_for_read()?;
        // A GET for less than the caller asks for would only cost another request.
        let available = self.available(out.len())?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl Drop for Storage {
    /// Flushes best-effort, as `BufWriter` does, and logs a failure: call
    /// [`close`](Storage::close) to see it. Skipped while panicking.
    fn drop(&mut self) {
        if !self.closed
            && !std::thread::panicking()
            && let Err(err) = self.flush()
        {
            log::error!(
                "dropping the stream {} lost its unflushed bytes: {err}",
                self.writer.tail_key().unwrap_or_default()
            );
        }
    }
}

impl fmt::Debug for Storage {
    /// Shows where the stream is, never the bucket's credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Storage")
            .field("bucket", &self.client.bucket_name())
            .field("tail", &self.writer.tail_key())
            .field("position", &self.reader.pos)
            .field("closed", &self.closed)
            .finish()
    }
}
