//! The stream itself: [`Storage`] and its read, write and seek state.

use std::fmt;
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};

use s3::Bucket;

use crate::client::{Client, Expect};
use crate::index::Index;
use crate::layout::{Layout, Location, Segment};
use crate::{Error, Options};

/// First ranged GET after a seek: small, so random reads stay cheap; it doubles on sequential
/// reads up to [`Options::read_chunk`].
const FIRST_READ: usize = 64 * 1024;

/// An append-only byte stream kept in S3, as one `Read + Write + Seek + BufRead` handle.
///
/// Writes are buffered in memory and always append to the end of the stream;
/// [`flush`](Write::flush) makes every byte written so far durable by overwriting the tail object
/// with the whole buffered segment; once the tail holds at least [`Options::min_size`] MiB it is
/// sealed and later bytes go to a new object. Reads see every object in order, then this handle's
/// unflushed bytes; [`Seek`] moves the read position anywhere from 0 to the stream's length.
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
/// log.close()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Storage {
    client: Client,
    seal_bytes: usize,
    read_chunk: usize,
    /// The objects before the tail (all known objects while nothing was written).
    index: Index,
    /// The writer's object, known from the first write on.
    tail: Option<Tail>,
    read: ReadState,
    /// Set once another writer took over the tail: this handle writes no more.
    fenced: Option<Fence>,
    closed: bool,
}

/// The last object, held whole in memory while it is written.
struct Tail {
    seq: u64,
    buf: Vec<u8>,
    /// How much of `buf` the object in S3 holds.
    uploaded: usize,
    /// The object's ETag as we last wrote or read it; `None` while it does not exist.
    etag: Option<String>,
}

impl Tail {
    fn new(seq: u64, buf: Vec<u8>, etag: Option<String>) -> Tail {
        Tail {
            seq,
            uploaded: buf.len(),
            buf,
            etag,
        }
    }
}

/// What a fenced writer keeps: the key it lost and the bytes that never reached S3.
struct Fence {
    key: String,
    unflushed: Vec<u8>,
}

struct ReadState {
    pos: u64,
    /// Stream offset of `chunk[0]`.
    chunk_start: u64,
    chunk: Vec<u8>,
    /// Size of the next ranged GET.
    window: usize,
}

impl ReadState {
    fn chunk_holds(&self, pos: u64) -> bool {
        pos >= self.chunk_start && pos - self.chunk_start < self.chunk.len() as u64
    }
}

impl Storage {
    /// Opens the stream at `location`, `s3://bucket/dir/name.ext` or the original package's
    /// `bucket/dir/name.ext`, with credentials, region and endpoint from the standard AWS
    /// environment:
    ///
    /// - `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, else the shared
    ///   credentials file (`AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`, profile
    ///   `AWS_PROFILE` or `default`);
    /// - `AWS_REGION` or `AWS_DEFAULT_REGION` (default `us-east-1`);
    /// - `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` for S3-compatible servers, which are then
    ///   addressed path-style.
    ///
    /// The location and options are checked before any request; then one listing request checks
    /// that the bucket exists (it is never created). Nothing else is read until it is needed.
    ///
    /// ```no_run
    /// use s3_syncr::{Options, Storage};
    ///
    /// let log = Storage::open("s3://my-bucket/logs/app.log", Options::default())?;
    /// # Ok::<(), s3_syncr::Error>(())
    /// ```
    pub fn open(location: &str, options: Options) -> Result<Storage, Error> {
        let location = Location::parse(location)?;
        options.seal_bytes()?;
        let bucket = crate::env::bucket(&location.bucket, |key| std::env::var(key).ok())?;
        Storage::new(bucket, &location.name, options)
    }

    /// Opens stream `name` in a bucket the caller built: for credentials, endpoints, timeouts or
    /// TLS settings that the environment does not cover.
    ///
    /// ```
    /// # let server = s3_syncr_test_server::Server::start();
    /// use s3::{Bucket, Region, creds::Credentials};
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
        let seal_bytes = options.seal_bytes()?;
        let read_chunk = options.read_chunk;
        let client = Client::new(bucket, layout, options);
        client.check_bucket()?;
        Ok(Storage {
            client,
            seal_bytes,
            read_chunk,
            index: Index::default(),
            tail: None,
            read: ReadState {
                pos: 0,
                chunk_start: 0,
                chunk: Vec::new(),
                window: FIRST_READ.min(read_chunk),
            },
            fenced: None,
            closed: false,
        })
    }

    /// Flushes, then refuses further reads, writes and seeks with [`Error::Closed`].
    ///
    /// If the flush fails the stream stays open and keeps every byte, so `close` can be retried.
    /// Closing a closed stream is `Ok`. Unlike dropping, closing reports the flush's error.
    ///
    /// ```
    /// # let server = s3_syncr_test_server::Server::start();
    /// # let bucket = server.new_bucket();
    /// use std::io::Write;
    /// use s3_syncr::{Options, Storage};
    ///
    /// let mut log = Storage::new(bucket, "app.log", Options::default())?;
    /// log.write_all(b"kept without an explicit flush")?;
    /// log.close()?;
    /// log.close()?;
    /// assert!(log.write(b"x").is_err());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn close(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        self.flush()?;
        self.closed = true;
        self.tail = None;
        self.read.chunk = Vec::new();
        Ok(())
    }

    /// The stream's objects in S3, in order: key, sequence number, size. Bytes not yet flushed
    /// are not in any object, so they are not counted.
    ///
    /// ```
    /// # let server = s3_syncr_test_server::Server::start();
    /// # let bucket = server.new_bucket();
    /// use std::io::Write;
    /// use s3_syncr::{Options, Storage};
    ///
    /// let options = Options { min_size: 1, ..Options::default() };
    /// let mut log = Storage::new(bucket, "app.log", options)?;
    /// log.write_all(&vec![b'a'; 1 << 20])?; // fills the first object
    /// log.write_all(b"tail")?; // seals it and starts the second
    /// log.flush()?;
    /// let sizes: Vec<u64> = log.segments()?.iter().map(|s| s.size).collect();
    /// assert_eq!(sizes, [1 << 20, 4]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn segments(&mut self) -> Result<Vec<Segment>, Error> {
        self.check_open()?;
        let segments = self.client.list(None)?;
        if let Some(gap) = segments.windows(2).find(|w| w[1].seq != w[0].seq + 1) {
            return Err(Error::MissingSegment {
                key: self.client.key(gap[0].seq + 1),
            });
        }
        Ok(segments)
    }

    fn check_open(&self) -> Result<(), Error> {
        if self.closed {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    /// Brings the index up to date with S3: the last known object and everything after it.
    fn refresh(&mut self) -> Result<(), Error> {
        let after = self.index.last().and_then(|last| last.seq.checked_sub(1));
        let listed = self.client.list(after)?;
        let client = &self.client;
        self.index.update(listed, |seq| client.key(seq))
    }

    /// The stream's length, as of now.
    fn len(&mut self) -> Result<u64, Error> {
        match &self.tail {
            Some(tail) => Ok(self.index.end() + tail.buf.len() as u64),
            None => {
                self.refresh()?;
                Ok(self.index.end())
            }
        }
    }

    /// Finds the end of the stream on the first write: a last object below the sealing size is
    /// continued (its bytes are fetched once, now), otherwise a new object is started.
    fn tail(&mut self) -> Result<&mut Tail, Error> {
        let tail = match self.tail.take() {
            Some(tail) => tail,
            None => self.find_tail()?,
        };
        Ok(self.tail.insert(tail))
    }

    fn find_tail(&mut self) -> Result<Tail, Error> {
        self.refresh()?;
        Ok(match self.index.last() {
            Some(last) if last.size < self.seal_bytes as u64 => {
                let (mut buf, etag) = self.client.get_whole(last.seq, last.size)?;
                buf.reserve_exact(self.seal_bytes - buf.len());
                self.index.truncate_from(last.seq);
                Tail::new(last.seq, buf, Some(etag))
            }
            last => Tail::new(
                next_seq(last.map(|l| l.seq))?,
                Vec::with_capacity(self.seal_bytes),
                None,
            ),
        })
    }

    /// Uploads the tail if it has bytes S3 does not. If another writer got there first, this
    /// handle is fenced: it keeps its unflushed bytes aside and writes no more.
    fn upload(&mut self) -> Result<(), Error> {
        if let Some(fence) = &self.fenced {
            return Err(Error::Fenced {
                key: fence.key.clone(),
            });
        }
        let Some(tail) = self.tail.as_mut().filter(|t| t.buf.len() > t.uploaded) else {
            return Ok(());
        };
        let expect = tail.etag.as_deref().map_or(Expect::Absent, Expect::Etag);
        match self.client.put(tail.seq, &tail.buf, expect) {
            Ok(etag) => {
                tail.etag = Some(etag);
                tail.uploaded = tail.buf.len();
                Ok(())
            }
            Err(Error::Fenced { key }) => {
                log::error!("{key} was changed by another writer: this handle stops writing");
                self.fenced = Some(Fence {
                    key: key.clone(),
                    unflushed: tail.buf.split_off(tail.uploaded),
                });
                // Reads now show what S3 holds, from the objects before the tail on.
                self.tail = None;
                Err(Error::Fenced { key })
            }
            Err(err) => Err(err),
        }
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
    pub fn unflushed(&self) -> &[u8] {
        match (&self.fenced, &self.tail) {
            (Some(fence), _) => &fence.unflushed,
            (None, Some(tail)) => &tail.buf[tail.uploaded..],
            (None, None) => &[],
        }
    }

    /// Seals a full tail: uploads it a last time and starts the next object.
    fn rotate_if_full(&mut self) -> Result<(), Error> {
        if self.tail()?.buf.len() < self.seal_bytes {
            return Ok(());
        }
        self.upload()?;
        if let Some(tail) = self.tail.as_mut() {
            let sealed = tail.seq;
            let size = tail.buf.len() as u64;
            tail.seq = next_seq(Some(sealed))?;
            tail.buf.clear();
            tail.uploaded = 0;
            tail.etag = None;
            self.index.push(sealed, size);
            log::info!(
                "sealed {} at {size} bytes; continuing in {}",
                self.client.key(sealed),
                self.client.key(sealed + 1)
            );
        }
        Ok(())
    }
}

fn next_seq(last: Option<u64>) -> Result<u64, Error> {
    match last {
        None => Ok(0),
        Some(seq) => seq.checked_add(1).ok_or_else(|| {
            Error::InvalidConfig("the stream has used every sequence number".into())
        }),
    }
}

impl Write for Storage {
    /// Appends all of `buf` to the tail object in memory and returns its length; a write is never
    /// split across objects. The first write of a handle lists the stream to find its end, and a
    /// write that finds the tail full first seals it: if that upload fails, nothing of `buf` is
    /// appended.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.check_open()?;
        if let Some(fence) = &self.fenced {
            return Err(Error::Fenced {
                key: fence.key.clone(),
            }
            .into());
        }
        if buf.is_empty() {
            return Ok(0);
        }
        self.rotate_if_full()?;
        let tail = self.tail()?;
        if tail.buf.capacity() - tail.buf.len() < buf.len() {
            // Only the write that crosses the sealing size gets here: grow by just that much.
            tail.buf.reserve_exact(buf.len());
        }
        tail.buf.extend_from_slice(buf);
        Ok(buf.len())
    }

    /// Makes every byte written so far durable with one PUT of the whole tail object, if any
    /// byte was written since the last upload; otherwise sends nothing. On failure nothing is
    /// dropped, and the next flush tries again. Flushing a closed stream is `Ok`: it holds no
    /// unflushed byte.
    fn flush(&mut self) -> io::Result<()> {
        Ok(self.upload()?)
    }
}

impl BufRead for Storage {
    /// Returns the bytes at the read position: from the chunk fetched last, else from this
    /// handle's unflushed tail, else from a new ranged GET. At the end of the stream it lists
    /// the objects again, so bytes appended since by any handle are found.
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.check_open()?;
        let pos = self.read.pos;
        if !self.read.chunk_holds(pos) {
            if pos >= self.index.end() && self.tail.is_none() {
                self.refresh()?;
            }
            let tail_start = self.index.end();
            if let Some(tail) = self.tail.as_ref().filter(|_| pos >= tail_start) {
                let offset = (pos - tail_start) as usize;
                return Ok(&tail.buf[offset.min(tail.buf.len())..]);
            }
            let Some(entry) = self.index.find(pos) else {
                return Ok(&[]);
            };
            let offset = pos - entry.start;
            let len = (entry.size - offset).min(self.read.window as u64);
            self.read.chunk.clear();
            self.read.chunk_start = pos;
            let fetched = self
                .client
                .get_range(entry.seq, offset, len, &mut self.read.chunk);
            if let Err(err) = fetched {
                self.read.chunk.clear();
                return Err(err.into());
            }
            self.read.window = (self.read.window * 2).min(self.read_chunk);
        }
        let offset = (pos - self.read.chunk_start) as usize;
        Ok(&self.read.chunk[offset..])
    }

    fn consume(&mut self, amt: usize) {
        self.read.pos += amt as u64;
    }
}

impl Read for Storage {
    /// Reads from the read position. `Ok(0)` means the end of the stream as of now: a later
    /// read continues from there with whatever was appended since.
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl Seek for Storage {
    /// Moves the read position to any offset from 0 to the stream's length (its unflushed bytes
    /// included), and returns it. Seeking from the end, or past the length last seen, lists the
    /// objects; a seek inside the chunk already fetched sends nothing. A target outside the
    /// stream is [`Error::SeekPositionNotSupported`] and leaves the position unchanged. Writes
    /// still append to the end.
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.check_open()?;
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(delta) => self.read.pos.checked_add_signed(delta),
            SeekFrom::End(delta) => self.len()?.checked_add_signed(delta),
        };
        let known = self.index.end() + self.tail.as_ref().map_or(0, |t| t.buf.len() as u64);
        let target = match target {
            Some(t) if t <= known => t,
            Some(t) if !matches!(to, SeekFrom::End(_)) && t <= self.len()? => t,
            _ => return Err(Error::SeekPositionNotSupported.into()),
        };
        if !self.read.chunk_holds(target) {
            self.read.window = FIRST_READ.min(self.read_chunk);
        }
        self.read.pos = target;
        Ok(target)
    }
}

impl Drop for Storage {
    /// Flushes best-effort, as `BufWriter` does, and logs a failure: call
    /// [`close`](Storage::close) to see it. Skipped while panicking.
    fn drop(&mut self) {
        if !self.closed && !std::thread::panicking() {
            if let Err(err) = self.flush() {
                log::error!(
                    "dropping the stream {} lost its unflushed bytes: {err}",
                    self.client.key(self.tail.as_ref().map_or(0, |t| t.seq))
                );
            }
        }
    }
}

impl fmt::Debug for Storage {
    /// Shows where the stream is, never the bucket's credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Storage")
            .field("bucket", &self.client.bucket_name())
            .field("tail", &self.tail.as_ref().map(|t| self.client.key(t.seq)))
            .field("unflushed", &self.unflushed().len())
            .field("fenced", &self.fenced.is_some())
            .field("position", &self.read.pos)
            .field("closed", &self.closed)
            .finish()
    }
}
