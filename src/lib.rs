//! An append-only byte stream kept in Amazon S3 or any S3-compatible store, behind one blocking
//! [`std::io`] handle: [`Storage`] implements [`Read`](std::io::Read),
//! [`Write`](std::io::Write), [`Seek`](std::io::Seek) and [`BufRead`](std::io::BufRead).
//!
//! ```
//! # let server = s3_syncr_test_server::Server::start();
//! # let bucket = server.new_bucket();
//! use std::io::{self, BufWriter, Read, Seek, Write};
//! use s3_syncr::{Options, Storage};
//!
//! let log = Storage::new(bucket, "logs/app.log", Options::default())?;
//! let mut writer = BufWriter::new(log);
//! io::copy(&mut &b"many records\n"[..], &mut writer)?;
//! writer.flush()?; // durable from here on
//!
//! let mut log = writer.into_inner().map_err(|e| e.into_error())?;
//! log.rewind()?;
//! let mut text = String::new();
//! log.read_to_string(&mut text)?;
//! assert_eq!(text, "many records\n");
//! log.close()?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Layout
//! Stream `dir/name.ext` is stored as objects `dir/name-<seq>.ext`, `<seq>` a 20-digit
//! zero-padded decimal from `00000000000000000000`, so S3's lexicographic listing order is the
//! stream order. Other keys under the same prefix are not part of the stream. The stream starts
//! at the lowest sequence number present; a missing number between two present ones is a gap:
//! reading into it is an [`Error::MissingSegment`], and the objects after it are at the offsets
//! they record.
//!
//! # Offsets
//! Every object records the stream offset of its first byte in its metadata
//! (`x-amz-meta-s3syncr-start`), so positions are absolute: deleting the oldest objects
//! ([`Storage::trim`], a lifecycle rule, by hand) moves none. A new handle reads from
//! [`Storage::first_offset`]; a position before it is [`Error::Trimmed`], and an object that
//! records a start other than its predecessor's end is [`Error::Discontinuity`].
//!
//! # Durability
//! [`flush`](std::io::Write::flush) returns `Ok` only once every byte accepted by `write` so far
//! is in S3, in order: it overwrites the tail object with the whole buffered segment, or appends
//! the new bytes to it by a server-side copy once it is large. Once the tail holds at least
//! [`Options::seal_size`] bytes (the original's `MinSize`), the next write seals it (it is never
//! written again) and starts the next object. [`Storage::close`] flushes and reports errors,
//! handing the handle back in a [`CloseError`]; dropping a `Storage` flushes best-effort and
//! only logs a failure.
//!
//! # Cost
//! A flush re-uploads the tail while it is small; once S3 holds [`Options::append_by_copy`]
//! bytes of it (5 MiB), it sends only the new bytes (an append by copy): flushing every `K`
//! bytes into objects of `S` bytes uploads about `1 + min(S, T)² / 2KS` times the data written,
//! `T` the threshold. From there on flushed bytes leave memory. Large writes stream out as
//! parts of [`Options::part_size`] bytes, [`Options::write_ahead`] at once, within an object and
//! across objects, while writing goes on; objects are completed in stream order, so a crash
//! leaves no gap, and the writer's memory does not grow with [`Options::seal_size`]. Reading
//! fetches ranged GETs of at most [`Options::read_chunk`] bytes; a sequential reader keeps
//! [`Options::read_ahead`] of them in flight, across objects, so memory stays at
//! `read_ahead + 1` chunks whatever the object size, and a read after a seek costs one small
//! GET.
//!
//! # Integrity
//! Every body sent carries its CRC32C, which the server checks before storing it, and
//! every object ends up with one CRC32C of its whole bytes, however it was uploaded. A
//! reader that reads an object from its first byte to its last checks it against that checksum
//! ([`Options::verify_reads`]): a mismatch is [`Error::Corrupt`], and no byte of the object is
//! handed out.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod client;
mod draw;
mod env;
mod error;
mod index;
mod job;
mod layout;
mod options;
mod reader;
#[cfg(test)]
mod sim;
mod storage;
mod store;
mod writer;

pub use error::Error;
pub use layout::{Gap, Listing, PendingUpload, Segment};
pub use options::{Options, OptionsBuilder};
/// rust-s3, the version whose [`Bucket`](s3::Bucket) [`Storage::new`] takes: build buckets
/// through this path, and no version of your own need match it.
///
/// ```
/// use s3_syncr::s3::{Bucket, Region, creds::Credentials};
///
/// let region = Region::Custom { region: "us-east-1".into(), endpoint: "http://127.0.0.1:9000".into() };
/// let credentials = Credentials::new(Some("key"), Some("secret"), None, None, None)?;
/// let bucket = Bucket::new("my-bucket", region, credentials)?.with_path_style();
/// assert_eq!(bucket.name(), "my-bucket");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub use s3;
pub use storage::{CloseError, Storage};

/// The README's examples, compiled (and run where they can be) as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
