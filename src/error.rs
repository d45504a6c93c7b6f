//! The one error type of the crate, and how it becomes an [`io::Error`].

use std::io;

/// Everything that can go wrong in s3-syncr.
///
/// The [`Read`](std::io::Read), [`Write`](std::io::Write) and [`Seek`](std::io::Seek)
/// implementations return [`io::Error`]s; each one carries an `Error` as its inner error, so
/// callers can get it back with [`io::Error::get_ref`] and `downcast_ref`, and its
/// [`io::ErrorKind`] follows [`Error::kind`].
///
/// Messages never contain credentials, signatures or signed URLs: S3 error bodies are reduced to
/// their `Code` and `Message` elements (AWS echoes the string-to-sign in some of them).
///
/// ```
/// use s3_syncr::{Error, Options, Storage};
///
/// let err = Storage::open("s3://Not_A_Bucket/log.txt", Options::default()).unwrap_err();
/// assert!(matches!(err, Error::InvalidLocation { .. }));
/// let io_err = std::io::Error::from(err);
/// assert_eq!(io_err.kind(), std::io::ErrorKind::InvalidInput);
/// assert!(io_err.get_ref().unwrap().downcast_ref::<Error>().is_some());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The location or stream name cannot name a stream (empty name, name ending in `/`, bad
    /// bucket name, unsupported URL scheme, ...).
    #[error("invalid location {location:?}: {reason}")]
    InvalidLocation {
        /// The location as given.
        location: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A setting of [`Options`](crate::Options) is out of range, alone or with the others:
    /// refused by [`OptionsBuilder::build`](crate::OptionsBuilder::build).
    #[error("invalid option {option}: {reason}")]
    InvalidOption {
        /// The setting, as its builder method names it without `with_`: `seal_size`,
        /// `part_size`, ...
        option: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// A configuration value from outside [`Options`](crate::Options) cannot be used: an AWS
    /// environment variable (a key without its secret, an endpoint that is not a URL, an
    /// unknown region), or a CA file (`ca_file`, `AWS_CA_BUNDLE`) that cannot be read or holds
    /// no certificate.
    #[error("invalid configuration: {reason}")]
    InvalidConfig {
        /// What is wrong, naming the variable or file.
        reason: String,
    },
    /// No credentials were found in the environment or the shared credentials file.
    #[error(
        "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or use ~/.aws/credentials"
    )]
    NoCredentials,
    /// The bucket does not exist. s3-syncr never creates buckets.
    #[error("bucket {bucket:?} does not exist")]
    BucketNotFound {
        /// The bucket's name.
        bucket: String,
    },
    /// S3 answered a request with an error status.
    #[error("{op} {key:?}: HTTP {status} {code}: {message}")]
    Status {
        /// The operation: `PUT`, `GET`, `LIST`, ...
        op: &'static str,
        /// The object key, or the listing prefix.
        key: String,
        /// The HTTP status code.
        status: u16,
        /// The S3 error code (`AccessDenied`, `SlowDown`, ...), empty if the body had none.
        code: String,
        /// The S3 error message, empty if the body had none.
        message: String,
    },
    /// The request did not get an answer: connection refused or reset, timeout, TLS failure.
    #[error("{op} {key:?}: {source}")]
    Transport {
        /// The operation: `PUT`, `GET`, `LIST`, ...
        op: &'static str,
        /// The object key, or the listing prefix.
        key: String,
        /// The underlying failure; its kind is kept.
        source: io::Error,
    },
    /// A sequence number between the first and the last object of the stream has no object.
    #[error("stream has a gap: object {key:?} is missing")]
    MissingObject {
        /// The key of the missing object.
        key: String,
    },
    /// An object of the stream changed size under a reader: objects only ever grow until they
    /// are sealed, so the stream was rewritten by something else.
    #[error("object {key:?} changed under the reader: expected {expected} bytes, found {found}")]
    ObjectChanged {
        /// The object's key.
        key: String,
        /// The size the reader knew or asked for.
        expected: u64,
        /// The size found.
        found: u64,
    },
    /// An object read from its first byte to its last does not match the CRC32C checksum
    /// the server stores for it: its bytes were damaged at rest or on the way. Every read of
    /// the object fails so; none of its bytes was handed out if it fits in the read-ahead
    /// buffers (see [`OptionsBuilder::with_verify_reads`](crate::OptionsBuilder::with_verify_reads)).
    #[error(
        "object {key:?} does not match its stored checksum (CRC32C {stored:08x}, read {read:08x})"
    )]
    Corrupt {
        /// The object's key.
        key: String,
        /// The checksum the server stores.
        stored: u32,
        /// The checksum of the bytes read.
        read: u32,
    },
    /// Another writer changed the stream's tail (a conditional write failed with 412): this
    /// handle stops writing, so that two writers never interleave. Reads still work, and the
    /// bytes that did not reach S3 stay available through
    /// [`Storage::unflushed`](crate::Storage::unflushed), but for `lost` bytes of parts that
    /// had left memory (see [`Options::part_size`](crate::Options::part_size)): those are in
    /// neither.
    #[error("another writer changed {key:?}: this handle no longer writes{}", lost_bytes(*lost))]
    Fenced {
        /// The object that could not be written.
        key: String,
        /// Accepted bytes that had left memory as parts of an upload the fence ended: neither
        /// stored nor handed back. 0 unless the writer held more than its write budget.
        lost: u64,
    },
    /// A multipart upload of this handle's vanished (aborted by an
    /// `AbortIncompleteMultipartUpload` lifecycle rule or by another process) after some of its
    /// parts had left memory (see [`Options::part_size`](crate::Options::part_size)): those
    /// `lost` bytes, accepted by `write` but never in a complete object, cannot be sent again.
    /// The handle stops writing, as when [fenced](Error::Fenced); the bytes it still holds are
    /// in [`Storage::unflushed`](crate::Storage::unflushed). An upload that vanishes while all
    /// its bytes are in memory is started again without an error.
    #[error(
        "the upload to {key:?} vanished with {lost} bytes that are no longer in memory: they are \
         lost, and this handle no longer writes"
    )]
    UploadLost {
        /// The object whose upload vanished.
        key: String,
        /// How many accepted bytes are lost.
        lost: u64,
    },
    /// An object records a start offset (in its `x-amz-meta-s3syncr-start` metadata) other than
    /// where its predecessor ends: it is a foreign or rewritten object, and its bytes are not at
    /// the offsets the stream gives them.
    #[error("object {key:?} records start offset {found}, but the stream puts it at {expected}")]
    Discontinuity {
        /// The object's key.
        key: String,
        /// Where the stream puts it: its predecessor's start plus its predecessor's size.
        expected: u64,
        /// The start offset it records.
        found: u64,
    },
    /// A position before the first byte still in S3: the objects holding it were deleted by
    /// [`Storage::trim`](crate::Storage::trim), a lifecycle rule or by hand. The position is
    /// unchanged; [`Storage::first_offset`](crate::Storage::first_offset) is where the stream
    /// now starts.
    #[error("offset {requested} was trimmed: the stream now starts at offset {first}")]
    Trimmed {
        /// The offset asked for.
        requested: u64,
        /// The first offset still available.
        first: u64,
    },
    /// [`Storage::trim`](crate::Storage::trim) would make an object that does not record its
    /// start offset (written by s3-syncr 0.1.0 or another tool) the stream's first one: new
    /// handles would then count offsets from 0 there, moving every offset. Nothing was deleted.
    #[error(
        "object {key:?} does not record its start offset: trimming up to it would move every \
         offset (trim to an object written by this version instead)"
    )]
    NoRecordedStart {
        /// The object that would become the first one.
        key: String,
    },
    /// A seek to a negative position or past the end of the stream.
    #[error(
        "seek position is not supported: it must lie between the first offset and the stream's \
         length"
    )]
    SeekPositionNotSupported,
    /// Something that cannot happen did: a broken invariant of s3-syncr's (a bug, please
    /// report it), a worker thread that panicked or could not be started. No byte was dropped
    /// for it: the operation can be tried again.
    #[error("internal error: {what}")]
    Internal {
        /// What went wrong.
        what: String,
    },
    /// The stream has used every sequence number (2^64 objects): nothing more can be
    /// appended to it. Reads still work.
    #[error("stream {key:?} has used every sequence number: it cannot take another object")]
    SequenceExhausted {
        /// The key of the stream's last object.
        key: String,
    },
}

impl Error {
    /// The [`io::ErrorKind`] this error has once converted into an [`io::Error`].
    ///
    /// ```
    /// use s3_syncr::Error;
    /// let full = Error::SequenceExhausted { key: "app-18446744073709551615.log".into() };
    /// assert_eq!(full.kind(), std::io::ErrorKind::StorageFull);
    /// assert_eq!(Error::SeekPositionNotSupported.kind(), std::io::ErrorKind::InvalidInput);
    /// let trimmed = Error::Trimmed { requested: 10, first: 4096 };
    /// assert_eq!(trimmed.kind(), std::io::ErrorKind::NotFound);
    /// ```
    pub fn kind(&self) -> io::ErrorKind {
        use io::ErrorKind as K;
        match self {
            Error::InvalidLocation { .. }
            | Error::InvalidOption { .. }
            | Error::InvalidConfig { .. }
            | Error::NoCredentials
            | Error::SeekPositionNotSupported => K::InvalidInput,
            Error::BucketNotFound { .. } => K::NotFound,
            Error::Status { status, .. } => match status {
                401 | 403 => K::PermissionDenied,
                404 => K::NotFound,
                408 | 504 => K::TimedOut,
                // A server without the operation (s3s-fs has no ListMultipartUploads).
                501 => K::Unsupported,
                _ => K::Other,
            },
            Error::Transport { source, .. } => source.kind(),
            Error::MissingObject { .. }
            | Error::ObjectChanged { .. }
            | Error::Corrupt { .. }
            | Error::Discontinuity { .. } => K::InvalidData,
            // The bytes existed and are gone: not a bad argument like a seek past the end.
            Error::Trimmed { .. } => K::NotFound,
            Error::NoRecordedStart { .. } => K::Unsupported,
            Error::Fenced { .. } => K::AlreadyExists,
            // Not `Interrupted`: `write_all` and `io::copy` retry that silently.
            Error::UploadLost { .. } => K::Other,
            // Like a full disk: the stream takes no more bytes, whatever is tried again.
            Error::SequenceExhausted { .. } => K::StorageFull,
            // Not a transport kind: retrying callers must not take a bug for a network blip.
            Error::Internal { .. } => K::Other,
        }
    }

    pub(crate) fn internal(what: impl Into<String>) -> Error {
        Error::Internal { what: what.into() }
    }

    pub(crate) fn config(reason: impl Into<String>) -> Error {
        Error::InvalidConfig {
            reason: reason.into(),
        }
    }
}

/// ", and N bytes that had left memory are lost", for a fence that lost some.
fn lost_bytes(lost: u64) -> String {
    match lost {
        0 => String::new(),
        n => format!(", and {n} bytes that had left memory are lost"),
    }
}

impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        io::Error::new(err.kind(), err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_error_keeps_kind_and_inner_error() {
        let cases = [
            (
                Error::Status {
                    op: "GET",
                    key: "k".into(),
                    status: 403,
                    code: "AccessDenied".into(),
                    message: String::new(),
                },
                io::ErrorKind::PermissionDenied,
            ),
            (
                Error::Transport {
                    op: "PUT",
                    key: "k".into(),
                    source: io::ErrorKind::ConnectionRefused.into(),
                },
                io::ErrorKind::ConnectionRefused,
            ),
            (
                Error::MissingObject { key: "k".into() },
                io::ErrorKind::InvalidData,
            ),
            (
                Error::BucketNotFound { bucket: "b".into() },
                io::ErrorKind::NotFound,
            ),
            (
                Error::Discontinuity {
                    key: "k".into(),
                    expected: 10,
                    found: 0,
                },
                io::ErrorKind::InvalidData,
            ),
            (
                Error::Trimmed {
                    requested: 0,
                    first: 10,
                },
                io::ErrorKind::NotFound,
            ),
            (
                Error::NoRecordedStart { key: "k".into() },
                io::ErrorKind::Unsupported,
            ),
            (
                Error::InvalidOption {
                    option: "part_size",
                    reason: "too small".into(),
                },
                io::ErrorKind::InvalidInput,
            ),
            (
                Error::SequenceExhausted { key: "k".into() },
                io::ErrorKind::StorageFull,
            ),
            (Error::Internal { what: "bug".into() }, io::ErrorKind::Other),
            (
                Error::UploadLost {
                    key: "k".into(),
                    lost: 1,
                },
                io::ErrorKind::Other,
            ),
        ];
        for (err, kind) in cases {
            let text = err.to_string();
            let io_err = io::Error::from(err);
            assert_eq!(io_err.kind(), kind, "{text}");
            let inner = io_err.get_ref().and_then(|e| e.downcast_ref::<Error>());
            assert_eq!(inner.map(ToString::to_string), Some(text));
        }
    }
}
