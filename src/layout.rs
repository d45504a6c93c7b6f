//! How a stream name maps to object keys, and back: the layout the crate docs' `# Layout`
//! describes.

use crate::Error;

/// Digits of a sequence number: enough for any `u64`, so the padding never overflows.
const SEQ_DIGITS: usize = 20;

/// One object of a stream, as [`Storage::objects`](crate::Storage::objects) lists it.
///
/// `start` is the stream offset of the object's first byte: the first object's recorded start
/// (0 if it records none), then each object's predecessor's start plus its size (after a gap, in
/// [`Storage::listing`](crate::Storage::listing), the start the next object records). It stays
/// the same when older objects are deleted.
///
/// ```
/// # let server = s3_syncr_test_server::Server::start();
/// # let bucket = server.new_bucket();
/// use std::io::Write;
/// use s3_syncr::{Options, Storage};
///
/// let mut log = Storage::new(bucket, "logs/app.log", Options::default())?;
/// log.write_all(b"hello")?;
/// log.flush()?;
/// let objects = log.objects()?;
/// assert_eq!(objects[0].key, "logs/app-00000000000000000000.log");
/// assert_eq!((objects[0].seq, objects[0].start, objects[0].size), (0, 0, 5));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// The object's key.
    pub key: String,
    /// Its sequence number: its place in the stream.
    pub seq: u64,
    /// The stream offset of its first byte.
    pub start: u64,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written, as the server reports it (RFC 3339).
    pub last_modified: String,
}

/// Missing sequence numbers between two present objects of a stream: a gap, as
/// [`Storage::listing`](crate::Storage::listing) reports it. Reads stop at its `stop` offset
/// with [`Error::MissingObject`] (`InvalidData`) naming `first_key`, and go on from `resume`
/// (reads and writes past the gap work if the object after it records its start);
/// [`Storage::trim_before_gap`](crate::Storage::trim_before_gap) deletes the objects before the
/// last gap, so that the stream starts again at the object after it.
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
/// log.close()?;
/// bucket.delete_object("app-00000000000000000001.log")?; // by hand
/// let mut log = Storage::new(bucket, "app.log", Options::default())?;
/// let gap = &log.listing()?.gaps[0];
/// assert_eq!((gap.first_seq, gap.last_seq), (1, 1));
/// assert_eq!(gap.first_key, "app-00000000000000000001.log");
/// assert_eq!((gap.stop, gap.resume), (1 << 20, Some(2 << 20)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// The first missing sequence number.
    pub first_seq: u64,
    /// The last missing one: the next object present has the one after it.
    pub last_seq: u64,
    /// The key of the first missing object, the one reads name.
    pub first_key: String,
    /// The key of the last missing object.
    pub last_key: String,
    /// The stream offset where the objects before the gap end: reads stop there.
    pub stop: u64,
    /// The start the first object after the gap records, where the stream resumes; `None`
    /// if it records none (an object of s3-syncr 0.1.0 or another tool), so that nothing can
    /// tell its offset, and the objects after it are counted on from `stop` instead (reads
    /// and writes then refuse the stream, as nothing places those objects).
    pub resume: Option<u64>,
}

/// A stream's objects and the gaps between them, as
/// [`Storage::listing`](crate::Storage::listing) finds them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// The objects present, in order. Those after a gap start where its
    /// [`resume`](Gap::resume) says.
    pub objects: Vec<Object>,
    /// The gaps, oldest first; none for a stream that reads through.
    pub gaps: Vec<Gap>,
}

/// A stream's two ends, as [`Storage::ends`](crate::Storage::ends) finds them in a few
/// requests at any object count: where it starts and ends, and its first and last objects.
///
/// ```
/// # let server = s3_syncr_test_server::Server::start();
/// # let bucket = server.new_bucket();
/// use std::io::Write;
/// use s3_syncr::{Options, Storage};
///
/// let options = Options::builder().with_seal_size(1 << 20).build()?;
/// let mut log = Storage::new(bucket.clone(), "app.log", options)?;
/// log.write_all(&vec![b'x'; 1 << 20])?; // the first object, sealed by the next write
/// log.write_all(b"tail")?;
/// log.close()?;
/// let ends = Storage::new(bucket, "app.log", Options::default())?.ends()?.unwrap();
/// assert_eq!((ends.first, ends.end), (0, (1 << 20) + 4));
/// assert_eq!((ends.first_seq, ends.last_seq, ends.last_size), (0, 1, 4));
/// assert_eq!(ends.last_key, "app-00000000000000000001.log");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ends {
    /// The stream offset of the first byte still in S3: where the first object starts.
    pub first: u64,
    /// The stream's length: where the last object ends.
    pub end: u64,
    /// The first object's sequence number.
    pub first_seq: u64,
    /// The last object's (the tail's) sequence number.
    pub last_seq: u64,
    /// The last object's key.
    pub last_key: String,
    /// The last object's size in bytes.
    pub last_size: u64,
}

/// A multipart upload to one of the stream's objects that was started and neither completed nor
/// aborted: a writer's upload under way, or one left behind by a crash (see
/// [`Storage::pending_uploads`](crate::Storage::pending_uploads)).
///
/// ```
/// # let server = s3_syncr_test_server::Server::start();
/// # let bucket = server.new_bucket();
/// use s3_syncr::{Options, Storage};
///
/// let mut log = Storage::new(bucket, "logs/app.log", Options::default())?;
/// // Nothing on a server that cannot list uploads (the in-process test server); S3 can.
/// for upload in log.pending_uploads().unwrap_or_default() {
///     println!("{} (object {}) since {}", upload.key, upload.seq, upload.initiated);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUpload {
    /// The object's key.
    pub key: String,
    /// Its sequence number.
    pub seq: u64,
    /// When the upload was started, as the server reports it (RFC 3339).
    pub initiated: String,
}

/// The bucket and stream name a location names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Location {
    pub(crate) bucket: String,
    pub(crate) name: String,
}

impl Location {
    /// Parses `s3://bucket/dir/name.ext` or the original package's `bucket/dir/name.ext`.
    pub(crate) fn parse(location: &str) -> Result<Location, Error> {
        let invalid = |reason| Error::InvalidLocation {
            location: location.to_owned(),
            reason,
        };
        let rest = match location.split_once("://") {
            Some(("s3", rest)) => rest,
            Some(_) => return Err(invalid("only s3:// locations are supported")),
            None => location,
        };
        let (bucket, name) = rest
            .split_once('/')
            .ok_or_else(|| invalid("expected bucket/name"))?;
        validate_bucket(bucket).map_err(invalid)?;
        validate_name(name).map_err(invalid)?;
        Ok(Location {
            bucket: bucket.to_owned(),
            name: name.to_owned(),
        })
    }
}

/// The naming scheme of one stream's objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    /// `dir/name-`: also the listing prefix.
    prefix: String,
    /// `.ext`, or empty.
    ext: String,
}

impl Layout {
    pub(crate) fn new(name: &str) -> Result<Layout, Error> {
        validate_name(name).map_err(|reason| Error::InvalidLocation {
            location: name.to_owned(),
            reason,
        })?;
        let base_start = name.rfind('/').map_or(0, |i| i + 1);
        // A leading dot names a hidden file, not an extension (as `Path::extension` has it).
        let split = match name[base_start..].rfind('.') {
            Some(0) | None => name.len(),
            Some(dot) => base_start + dot,
        };
        Ok(Layout {
            prefix: format!("{}-", &name[..split]),
            ext: name[split..].to_owned(),
        })
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(crate) fn key(&self, seq: u64) -> String {
        format!("{}{seq:0SEQ_DIGITS$}{}", self.prefix, self.ext)
    }

    /// The key of the stream's hint (see `client/hint.rs`): under the prefix, and never one of
    /// the stream's objects, which all end in a 20-digit number before the extension.
    pub(crate) fn hint_key(&self) -> String {
        format!("{}s3syncr-hint{}", self.prefix, self.ext)
    }

    /// The sequence number of `key` if it is one of this stream's objects.
    pub(crate) fn seq(&self, key: &str) -> Option<u64> {
        let digits = key.strip_prefix(&self.prefix)?.strip_suffix(&self.ext)?;
        if digits.len() == SEQ_DIGITS && digits.bytes().all(|b| b.is_ascii_digit()) {
            digits.parse().ok()
        } else {
            None
        }
    }
}

fn validate_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("the stream name is empty")
    } else if name.ends_with('/') {
        Err("the stream name ends with '/'")
    } else if name.starts_with('/') {
        Err("the stream name starts with '/'")
    } else if name.split('/').any(str::is_empty) {
        // `dir//name` is another key than `dir/name` in S3, the same file in a local store.
        Err("the stream name has an empty component ('//')")
    } else if name.split('/').any(|part| part == "." || part == "..") {
        Err("the stream name has a '.' or '..' component")
    } else if name.chars().any(char::is_control) {
        Err("the stream name contains a control character")
    } else if name.len() + SEQ_DIGITS + 1 > 1024 {
        Err("the stream name is too long for S3's 1024-byte keys")
    } else {
        Ok(())
    }
}

/// S3's bucket naming rules, so that a typo fails before any request.
fn validate_bucket(bucket: &str) -> Result<(), &'static str> {
    let bytes = bucket.as_bytes();
    let edge_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !(3..=63).contains(&bytes.len()) {
        Err("a bucket name has 3 to 63 characters")
    } else if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-')
    {
        Err("a bucket name has only lowercase letters, digits, '.' and '-'")
    } else if !edge_ok(bytes.first()) || !edge_ok(bytes.last()) {
        Err("a bucket name starts and ends with a letter or digit")
    } else if bucket.contains("..") {
        Err("a bucket name has no two adjacent dots")
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_follow_the_layout() {
        let cases = [
            ("dir/name.ext", "dir/name-00000000000000000007.ext"),
            ("name.ext", "name-00000000000000000007.ext"),
            ("dir/name", "dir/name-00000000000000000007"),
            ("dir.d/name", "dir.d/name-00000000000000000007"),
            ("a/b.tar.gz", "a/b.tar-00000000000000000007.gz"),
            ("a/.hidden", "a/.hidden-00000000000000000007"),
        ];
        for (name, key) in cases {
            let layout = Layout::new(name).unwrap();
            assert_eq!(layout.key(7), key);
            assert_eq!(layout.seq(key), Some(7));
        }
        let last = Layout::new("n").unwrap().key(u64::MAX);
        assert_eq!(last, "n-18446744073709551615");
    }

    #[test]
    fn foreign_keys_are_not_objects() {
        let layout = Layout::new("dir/name.ext").unwrap();
        for key in [
            "dir/name.ext",
            "dir/name-backup.ext",
            "dir/name-12.ext",
            "dir/name-00000000000000000001.ext.bak",
            "dir/name-00000000000000000001",
            "dir/name-x-00000000000000000001.ext",
            "dir/name-+0000000000000000001.ext",
            "dir/name-99999999999999999999.ext",
            "other/name-00000000000000000001.ext",
        ] {
            assert_eq!(layout.seq(key), None, "{key}");
        }
        assert_eq!(layout.seq(&layout.hint_key()), None);
        let bare = Layout::new("dir/name").unwrap();
        assert_eq!(bare.seq("dir/name-00000000000000000001.ext"), None);
    }

    #[test]
    fn locations_parse_or_fail_clearly() {
        let ok = Location::parse("s3://my-bucket/dir/log.txt").unwrap();
        assert_eq!(
            (ok.bucket.as_str(), ok.name.as_str()),
            ("my-bucket", "dir/log.txt")
        );
        assert_eq!(
            Location::parse("my-bucket/log.txt").unwrap(),
            Location {
                bucket: "my-bucket".into(),
                name: "log.txt".into()
            }
        );
        for bad in [
            "",
            "s3://",
            "s3://bucket",
            "s3://bucket/",
            "s3://bucket/dir/",
            "s3:///name",
            "https://bucket/name",
            "s3://Bucket/name",
            "s3://b/name",
            "s3://-bucket/name",
            "s3://bu..cket/name",
            "s3://bucket//name",
            "s3://bucket/dir//name",
            "s3://bucket/./name",
            "s3://bucket/../name",
            "s3://bucket/dir/..",
            "bucket/a/./b",
            "s3://bucket/na\nme",
            "bucket_x/name",
        ] {
            assert!(
                matches!(Location::parse(bad), Err(Error::InvalidLocation { .. })),
                "{bad:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in ".{0,80}") {
            let _ = Location::parse(&s);
            if let Ok(layout) = Layout::new(&s) {
                prop_assert_eq!(layout.seq(&layout.key(42)), Some(42));
            }
        }

        #[test]
        fn url_shaped_input_never_panics(
            scheme in "(s3|S3|http|)(://|:/|/|)",
            bucket in "[a-zA-Z0-9.-]{0,70}",
            name in "[a-z/.\\-_%+ ]{0,40}",
        ) {
            let location = format!("{scheme}{bucket}/{name}");
            if let Ok(parsed) = Location::parse(&location) {
                prop_assert!(!parsed.name.is_empty() && !parsed.name.ends_with('/'));
                prop_assert!((3..=63).contains(&parsed.bucket.len()));
            }
        }

        #[test]
        fn seq_roundtrips_and_orders(
            name in "([a-z][a-z._-]{0,6}/){0,2}[a-z][a-z._-]{0,6}[a-z]",
            a: u64,
            b: u64,
        ) {
            let layout = Layout::new(&name).unwrap();
            prop_assert_eq!(layout.seq(&layout.key(a)), Some(a));
            prop_assert_eq!(a.cmp(&b), layout.key(a).cmp(&layout.key(b)));
        }
    }
}
