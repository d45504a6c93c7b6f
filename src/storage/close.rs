//! The ways out of a [`Storage`]: closing, which hands the handle back when its last flush
//! fails, and discarding.

use std::fmt;
use std::io;

use super::Storage;
use crate::Error;

impl Storage {
    /// Flushes and closes the stream, reporting what dropping it would only log.
    ///
    /// If the flush fails, the [`CloseError`] holds the error and the handle, with every byte
    /// it held: retry with [`CloseError::into_storage`], or take the bytes S3 lacks with
    /// [`CloseError::into_unflushed`] (as [`BufWriter::into_parts`](std::io::BufWriter::into_parts)
    /// hands back a buffer). Turned into an [`io::Error`] (by `?` in a function returning
    /// `io::Result`), it keeps the [`Error`] and drops the handle, which flushes once more
    /// best-effort, as any dropped handle does.
    ///
    /// ```
    /// # let server = s3_syncr_test_server::Server::start();
    /// # let bucket = server.new_bucket();
    /// use std::io::Write;
    /// use s3_syncr::{Options, Storage};
    ///
    /// let mut log = Storage::new(bucket, "app.log", Options::default())?;
    /// log.write_all(b"kept without an explicit flush")?;
    /// if let Err(err) = log.close() {
    ///     let lost = err.into_unflushed(); // to keep elsewhere
    ///     eprintln!("{} bytes were not stored", lost.len());
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn close(mut self) -> Result<(), CloseError> {
        match self.writer.flush(&mut self.index) {
            Ok(()) => {
                self.closed = true;
                self.writer.release();
                self.reader.release();
                Ok(())
            }
            Err(error) => Err(CloseError {
                error,
                storage: Box::new(self),
            }),
        }
    }

    /// Gives up on the bytes that S3 does not hold: aborts the uploads under way (best
    /// effort), and returns those bytes (as [`unflushed`](Storage::unflushed) does), without a
    /// last flush. For a caller that already knows the flush cannot succeed (it failed, or the
    /// handle was fenced), and would rather not wait for a drop's retries.
    ///
    /// ```
    /// # let server = s3_syncr_test_server::Server::start();
    /// # let bucket = server.new_bucket();
    /// use std::io::{Read, Write};
    /// use s3_syncr::{Options, Storage};
    ///
    /// let mut log = Storage::new(bucket.clone(), "app.log", Options::default())?;
    /// log.write_all(b"kept")?;
    /// log.flush()?;
    /// log.write_all(b" and dropped")?;
    /// assert_eq!(log.discard(), b" and dropped");
    ///
    /// let mut reader = Storage::new(bucket, "app.log", Options::default())?;
    /// let mut text = String::new();
    /// reader.read_to_string(&mut text)?;
    /// assert_eq!(text, "kept");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn discard(mut self) -> Vec<u8> {
        let unflushed = self.writer.discard(&mut self.index);
        self.closed = true;
        unflushed
    }
}

/// A [`Storage::close`] whose flush failed: the error, and the handle with every byte S3
/// lacks, to retry or to take those bytes back.
///
/// ```
/// # let server = s3_syncr_test_server::Server::start();
/// # let bucket = server.new_bucket();
/// use std::io::Write;
/// use s3_syncr::{CloseError, Options, Storage};
///
/// fn close_or_keep(log: Storage, keep: &mut Vec<u8>) -> std::io::Result<()> {
///     log.close().map_err(|err: CloseError| {
///         keep.extend(err.unflushed());
///         err.into()
///     })
/// }
///
/// let mut log = Storage::new(bucket, "app.log", Options::default())?;
/// log.write_all(b"stored at close")?;
/// let mut kept = Vec::new();
/// close_or_keep(log, &mut kept)?;
/// assert!(kept.is_empty());
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct CloseError {
    error: Error,
    /// Boxed so that `Result<(), CloseError>` stays small on the path that succeeds.
    storage: Box<Storage>,
}

impl CloseError {
    /// Why the last flush failed.
    ///
    /// ```
    /// # fn handle(err: s3_syncr::CloseError) {
    /// if matches!(err.error(), s3_syncr::Error::Fenced { .. }) {
    ///     eprintln!("another writer took over the stream");
    /// }
    /// # }
    /// ```
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// The bytes accepted by `write` that S3 lacks, as
    /// [`Storage::unflushed`](Storage::unflushed) tells them; the handle is kept.
    ///
    /// ```
    /// # fn handle(err: s3_syncr::CloseError) {
    /// eprintln!("{} bytes not stored", err.unflushed().len());
    /// # }
    /// ```
    pub fn unflushed(&self) -> Vec<u8> {
        self.storage.unflushed()
    }

    /// Gives the handle up and returns the bytes S3 lacks, as
    /// [`Storage::discard`](Storage::discard) does: its uploads are aborted, and nothing is
    /// tried again.
    ///
    /// ```
    /// # fn handle(err: s3_syncr::CloseError) -> std::io::Result<()> {
    /// std::fs::write("unstored.bin", err.into_unflushed())
    /// # }
    /// ```
    pub fn into_unflushed(self) -> Vec<u8> {
        self.storage.discard()
    }

    /// The handle, open and with every byte it held, to [`close`](Storage::close) again (once
    /// the outage is over, say) or to go on with.
    ///
    /// ```
    /// # fn handle(err: s3_syncr::CloseError) -> Result<(), s3_syncr::CloseError> {
    /// std::thread::sleep(std::time::Duration::from_secs(10));
    /// err.into_storage().close()
    /// # }
    /// ```
    pub fn into_storage(self) -> Storage {
        *self.storage
    }

    /// The error, dropping the handle (which flushes once more, best-effort).
    ///
    /// ```
    /// # fn handle(err: s3_syncr::CloseError) {
    /// let err: s3_syncr::Error = err.into_error();
    /// # }
    /// ```
    pub fn into_error(self) -> Error {
        self.error
    }
}

impl fmt::Debug for CloseError {
    /// The error and the handle's place, never the bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloseError")
            .field("error", &self.error)
            .field("storage", &self.storage)
            .finish()
    }
}

impl fmt::Display for CloseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "closing the stream: {}", self.error)
    }
}

impl std::error::Error for CloseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl From<CloseError> for io::Error {
    /// The [`Error`], as `io::Error::from(Error)` makes it: its kind, and the `Error` inside.
    fn from(err: CloseError) -> io::Error {
        err.into_error().into()
    }
}

impl From<CloseError> for Error {
    /// The error, dropping the handle (which flushes once more, best-effort).
    fn from(err: CloseError) -> Error {
        err.into_error()
    }
}
