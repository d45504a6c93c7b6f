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
//! The sections below are the reference: what each operation promises, what it costs in
//! requests, bytes and memory, and how it fails. Performance figures are in the repository's
//! `benches/results.md`; the `s3-syncr` command is described in `docs/cli.md`.
//!
//! # Glossary
//!
//! One name per idea, in these docs, in the code and in the tests:
//!
//! - **stream**: the append-only sequence of bytes named `dir/name.ext`. A [`Storage`] is a
//!   **handle** on it; a **writer** is a handle that writes, a **reader** one that reads, a
//!   **follower** one that waits at the end for more.
//! - **object**: one S3 object holding a contiguous run of the stream's bytes, under key
//!   `dir/name-<seq>.ext`; `<seq>` is its **sequence number**. [`Object`] describes one,
//!   [`Error::MissingObject`] names a missing one. (0.2 called it a *segment*.)
//! - **offset**: a byte's absolute position in the stream; an object's **start** is the
//!   offset of its first byte, which it **records** in its metadata. The **first offset** is
//!   the start of the oldest object still stored; the **length** is the offset of the end.
//! - **tail**: the last object, the one writes append to while it is **open**.
//! - **seal**: the tail reaching the seal size ([`Options::seal_size`]) is sealed: it is never
//!   written again, and the next byte starts the next object.
//! - **flush**: [`Write::flush`](std::io::Write::flush): making the objects in S3 hold every
//!   byte the handle accepted so far. Bytes accepted and not yet flushed are **unflushed**.
//! - **upload**: an S3 multipart upload; a **part** is one piece of it, sent by UploadPart or
//!   copied by the server by UploadPartCopy. An **append by copy** is an upload whose first
//!   parts copy the object as it stands and whose last part is the new bytes.
//! - **chunk**: the bytes one ranged GET fetches for a reader, at most
//!   [`Options::read_chunk`]. **Read-ahead**: the chunks fetched before they are asked for.
//! - **poll**: a follower's GET past the known end, asking for new bytes.
//! - **trim**: deleting the oldest objects, whole, which raises the first offset and moves no
//!   other offset. Bytes before the first offset are **trimmed**.
//! - **gap**: one or more sequence numbers missing between two objects still present (an
//!   object deleted out of order). A read into a gap fails; the objects after it keep their
//!   offsets. Missing numbers whose older side is gone too are no gap: a trim deleted them,
//!   between two pages of a listing, say.
//! - **fenced**: a writer refused by a conditional request because another writer changed the
//!   stream first ([`Error::Fenced`]).
//! - **lost answer**: a request S3 applied whose answer never arrived; **settling** it is
//!   finding out, by another request, whether and how it landed.
//!
//! Inside the crate, an object where the index puts it is a `Placed`; what one request saw of
//! an object is named for the request (`Head`, `Polled` for a poll, `Whole` for a GET of all
//! of it, `Recorded` for the metadata a GET carries); S3's acknowledgement of a part is an
//! `UploadedPart`; a writer's object counts the bytes S3 has and memory **released**, and
//! those memory holds that S3 **mirrors**.
//!
//! # Layout
//!
//! Stream `dir/name.ext` is stored as objects `dir/name-<seq>.ext`, `<seq>` a 20-digit
//! zero-padded decimal from `00000000000000000000` (a name without extension gives
//! `dir/name-<seq>`; the extension is what follows the last dot of the base name), so S3's
//! lexicographic listing order is the stream order. Only keys of exactly that shape belong to
//! the stream: `dir/name.ext`, `dir/name-backup.ext`, `dir/name-12.ext` or another stream's
//! objects under the same prefix are ignored. Listing follows continuation tokens, so a stream
//! may have any number of objects. A stream at the bucket root (`s3://bucket/name.ext`) works.
//!
//! **Long streams.** From object 100 on, a writer rewrites a small hint,
//! `dir/name-s3syncr-hint.ext` (never a stream key), each time it creates an object: one PUT of
//! about 90 bytes per object, none per flush. Opening reads it beside the bucket's check (a
//! LIST of the stream's first key), both at once; `len()`, a writer's tail and `seek(End)` then
//! list one page from 100 objects before the object it names while a HEAD asks that object
//! where it starts: 4 requests in 2 round trips at any object count, open included. The front
//! ([`Storage::first_offset`], [`Storage::ends`], `s3-syncr stat`) takes one HEAD more, of the
//! first object the open listed; a seek far back 2 more (a LIST page where the offset should
//! be, guessed from the offsets around it, and a HEAD). A hint is never trusted: an object is in
//! the stream because a listing shows it, and starts where it records; a missing (0.2) or
//! foreign hint costs the full listing, a stale one a longer one, and the next writer's new
//! object writes one.
//!
//! Each object records its start in its user metadata, `x-amz-meta-s3syncr-start: <offset>`,
//! set on every PUT and upload. The stream starts at the lowest sequence number present, at
//! the start that object records (0 if it records none). Every object must start where the one
//! before ends: one that records another start is a foreign or rewritten object, and reading
//! it is [`Error::Discontinuity`] (`InvalidData`), naming its key and both offsets. An object
//! without the metadata (written by 0.1.0 or another tool) starts where the one before ends, so
//! old streams, and streams mixing old and new objects, read as before.
//!
//! # Offsets, retention and trimming
//!
//! Offsets are absolute: the same for every handle and every run, whatever was deleted since. A
//! saved [`stream_position`](std::io::Seek::stream_position) finds the same bytes later, or
//! fails; it never reads others. A new handle's position is [`Storage::first_offset`], 0 until
//! older objects are deleted; a handle learns where the stream starts with one request at
//! most (none for a writer on a new stream).
//!
//! Streams get trimmed: by an expiration lifecycle rule, by hand, or by [`Storage::trim`]
//! (`s3-syncr trim`). None of these moves an offset: a reader resuming from a saved position
//! reads the same bytes or gets [`Error::Trimmed`] (`NotFound`) naming the first offset left,
//! also when an object is deleted under it (its GET finds the object gone, lists the stream
//! again and reports `Trimmed` if the stream now starts after the position). The length is
//! unchanged, and appending continues at the same offsets.
//!
//! - [`Storage::trim`] deletes whole objects, oldest first (DeleteObjects, 1,000 keys a
//!   request, listing only what it deletes), never the last one, and refuses
//!   where the object that would become the first does not record where it starts;
//!   [`Storage::trim_dry_run`] answers, or refuses, alike without deleting.
//! - **Readers outlive retention.** When every object a handle knew was deleted from the front,
//!   it starts again from the first object left, at the start that object records: positions
//!   still stored keep working, earlier ones fail with `Trimmed`. Missing numbers in a listing
//!   are checked with a HEAD of the object before them, so a trim running between two pages of
//!   a listing is not taken for a gap.
//! - **A gap** (an object deleted by hand, a lifecycle rule expiring a day's objects in any
//!   order, a copy that lost one): reads stop where the objects before it end, with
//!   [`Error::MissingObject`] (`InvalidData`) naming the first missing key, and so do
//!   [`Storage::objects`] and [`Storage::trim`]; nothing is skipped silently. The objects after
//!   it are where they record they start (one HEAD per gap tells), so a writer appends at the
//!   end, and a reader or follower past the gap reads on; if that object records no start
//!   (0.1.0), nothing can place it and the stream is refused as a whole.
//!   [`Storage::listing`] (`s3-syncr ls`, `stat`) shows the stream anyway: its objects and each
//!   [`Gap`]. If the bytes before the gap can go, [`Storage::trim_before_gap`] (`s3-syncr trim
//!   --before-gap`) deletes every object before the last gap, oldest first, and the stream
//!   reads again from the object after it, at the offset it records; it refuses as `trim` does.
//!   To keep the bytes before the gap, copy them out first (`s3-syncr cat` stops at the gap).
//! - A lifecycle rule deletes by age, in any order within a day: prefer one expiration period
//!   well above the time a stream takes to seal its objects, or trim from a scheduled job
//!   (`s3-syncr trim --older-than`), which deletes oldest first.
//! - **Old objects.** Objects written by 0.1.0 (or another tool) record no start. While the
//!   first object is one of them, the stream counts from 0 there, as 0.1.0 did: if such a stream
//!   loses its first objects, its offsets move and nothing can tell by how much. The first object
//!   written by this version records its true start, so reading it then fails with
//!   [`Error::Discontinuity`] rather than returning bytes at wrong offsets. A stream this version
//!   appended to gets recorded starts from then on (a continued 0.1.0 tail gets one on its next
//!   upload), so `trim` may cut it at any newer object and refuses to cut it at an older one. An
//!   interrupted trim can leave an old object first: new handles then fail with
//!   `Discontinuity` at the first object that records its start, and so does the next `trim`;
//!   delete the remaining old objects up to that one by hand.
//!
//! # Durability
//!
//! - `write` appends to the tail in memory and returns `Ok(buf.len())`, unless an upload failed
//!   once some of a large write was taken: it then returns how many bytes it took, and the next
//!   write returns the error. Writes always append to the end, wherever the read position is.
//!   Where a write is split across objects: [`with_seal_size`](OptionsBuilder::with_seal_size).
//! - **After [`flush`](std::io::Write::flush) returns `Ok`, every byte ever accepted by `write`
//!   is in S3, in order.** The flush makes the tail hold every byte written to it: one PUT of
//!   the whole tail while it is small, an append by copy once it is large, or the Complete of
//!   the parts already sent (see [Cost of flushing](#cost-of-flushing)). A flush with nothing
//!   new sends no request. When it fails, nothing is dropped and the next flush tries again.
//! - **Large writes stream out** as parts while writing goes on, and **objects are completed
//!   in stream order**, so S3 only ever holds a prefix of the stream and a crash leaves no gap:
//!   [`with_part_size`](OptionsBuilder::with_part_size). Nothing of an upload is visible in S3
//!   until a flush, a seal or [`Storage::close`] completes it. If an upload fails (after
//!   retries), the next write or flush returns the error, appends nothing, and tries it again.
//! - [`Storage::close`] flushes and reports errors, handing the handle back with every byte in
//!   a [`CloseError`]; [`Storage::discard`] gives up on the unflushed bytes and returns them.
//!   Dropping a `Storage` flushes best-effort, like `BufWriter`, and logs a failure with
//!   `log::error!` (never while panicking).
//! - [`Storage::unflushed`] returns the bytes that are not in a complete object in S3 yet, so a
//!   caller can always see what a failed flush would lose. The one exception, the price of
//!   bounded memory, is a tail larger than the write budget that is not flushed (see
//!   [`with_part_size`](OptionsBuilder::with_part_size)): if its upload is then fenced,
//!   `Error::Fenced { lost }` counts the bytes that left memory; if it vanishes (aborted by a
//!   lifecycle rule or another process), the writer stops with [`Error::UploadLost`]. An upload
//!   that vanishes while all its bytes are still in memory is started again, with no error.
//! - Opening an existing stream appends after its last byte. If the last object is below its
//!   seal size, the first write continues it: its bytes are fetched by one GET, or, once it
//!   holds the [`Options::append_by_copy`] threshold, its size and ETag by one HEAD. Size and
//!   ETag always come from the same answer, so every later conditional write counts on one
//!   version of the object. Opening reads nothing.
//!
//! # Concurrent writers
//!
//! - **The contention rule:** among writers that found the same end of the stream, the first
//!   flush wins and the others are fenced (see
//!   [`with_conditional_writes`](OptionsBuilder::with_conditional_writes) for the headers, and
//!   for servers that ignore them). An append by copy copies exactly the bytes the handle
//!   counts (`x-amz-copy-source-range`) on the condition that the tail is still the version it
//!   knows (`x-amz-copy-source-if-match`), and completes with `If-Match` too. A 412 is
//!   [`Error::Fenced`] (`AlreadyExists`) naming the key; from then on every write and flush
//!   returns it, reads still work, and [`Storage::unflushed`] keeps exactly the bytes that
//!   never made it. A 409 (`ConditionalRequestConflict`: nothing was written) is sent again, as
//!   AWS documents. Two writers never interleave: the stream is one writer's bytes, followed by
//!   the other's only if the other reopened and took over the tail.
//! - **Writers need not share their options.** An object records the seal size it was started
//!   with (`x-amz-meta-s3syncr-seal`), and that size governs every writer that continues it.
//! - **A new object comes after the last one, or not at all.** `If-None-Match: *` also passes on
//!   a key that a trim or an expiry emptied after another writer filled it and went on. So a
//!   writer that learned the end over a second before it creates an object first lists the
//!   first key after it (one LIST): if one follows, it is fenced with nothing written. After, it
//!   lists again, and deletes its object and is fenced if a later one does not start where it
//!   ends. A writer streaming objects out pays nothing.
//! - **Lost answers are settled by identity, not by ETag.** Every upload records a random
//!   identifier of its handle in the object's metadata (`x-amz-meta-s3syncr-writer`). A write
//!   whose first attempt may have landed (its retry gets 412, or a Complete finds its upload
//!   gone) is settled by a HEAD: if this handle wrote the object, the write is done or carried on
//!   from that version. Nothing assumes an ETag is the MD5 of the body, which it is not on
//!   SSE-KMS and SSE-C buckets.
//! - **Vanished uploads.** A part or Complete answered `NoSuchUpload` starts the upload again
//!   from the parts in memory; a part whose answer is lost to a closed connection is checked
//!   against ListMultipartUploads. Add an `AbortIncompleteMultipartUpload` lifecycle rule (after
//!   a day, say): a crash can leave an upload behind, which [`Storage::pending_uploads`] lists.
//! - **Known limit:** if a write's answer is lost *and* another writer continues the tail
//!   before the HEAD that would settle it, the first writer is fenced with those bytes in
//!   `unflushed()` although they are stored: appending them again would store them twice.
//!
//! # Failures and retries
//!
//! Which failures are retried, and how a closed pooled connection counts:
//! [`with_retry_attempts`](OptionsBuilder::with_retry_attempts). Each request's deadline:
//! [`with_request_timeout`](OptionsBuilder::with_request_timeout). When a request that keeps
//! failing gives up: [`with_retry_max_elapsed`](OptionsBuilder::with_retry_max_elapsed). Each
//! retry logs a `warn!`. A read cut mid-object resumes with a ranged GET from the first byte
//! missing.
//!
//! # Cost of flushing
//!
//! A flush re-sends the whole tail until S3 holds the [`Options::append_by_copy`] threshold `T`
//! of it (5 MiB), then only the new bytes, by an append by copy: what that costs in bytes is in
//! [`with_seal_size`](OptionsBuilder::with_seal_size), and in requests and latency in
//! [`with_append_by_copy`](OptionsBuilder::with_append_by_copy). Beyond those:
//!
//! - The server does the copying: on AWS a part copy is server-side and Complete does not move
//!   the parts; s3s-fs rewrites the whole object on each Complete.
//! - Small objects flushed often are each re-sent whole until they reach `T`: 1 MiB objects
//!   flushed every 64 KiB upload 9×. With objects larger than `T`, flushing often is cheap in
//!   bytes.
//! - Reopening a tail of at least `T` costs one HEAD, not a download.
//!
//! # Memory
//!
//! Bounded whatever the object size: a writer's by its parts in flight
//! ([`with_part_size`](OptionsBuilder::with_part_size)), a reader's by its chunks in flight
//! ([`with_read_ahead`](OptionsBuilder::with_read_ahead)); about 40 MiB each by default.
//!
//! # Reading, seeking and following
//!
//! - Reads return the objects in order, then this handle's unflushed bytes. A `read` into an
//!   empty buffer returns 0 and sends nothing. How large the GETs are, and how many run ahead:
//!   [`with_read_chunk`](OptionsBuilder::with_read_chunk),
//!   [`with_read_ahead`](OptionsBuilder::with_read_ahead).
//! - [`Seek`](std::io::Seek) goes to any position from the first offset to the length and
//!   returns it. A target before the first offset is [`Error::Trimmed`]; a negative one or one
//!   past the end is [`Error::SeekPositionNotSupported`] (`InvalidInput`); either way the
//!   position is unchanged. A seek inside the chunk at hand sends nothing.
//! - At the end of the stream `read` returns `Ok(0)`; a later read looks again and returns the
//!   bytes appended since, by any handle.
//!
//! **Following.** A read at the end, [`Storage::wait_for_data`] and `cat --follow` poll with one
//! ranged GET from the known end of the last object, `Range: bytes=<end>-`: a 206 carries the
//! new bytes, a 416 says nothing is new. Once the last object holds its seal size the poll asks
//! for the next object instead (404: not yet). Objects are listed at start-up, at most once a
//! minute while following, and when a GET meets a trim or a discontinuity; a stream with no
//! object yet is listed at each poll. `wait_for_data(timeout)` paces the polls: 50 ms after one
//! that found bytes, then each wait 1.5 times the one before, up to `timeout`. An idle follower
//! polling every second makes about 60 GETs and at most one LIST a minute: on S3 Standard
//! (us-east-1, $0.0004 per 1,000 GETs, $0.005 per 1,000 LISTs) about $1.26 a month, where a LIST
//! each second would cost about $13.
//!
//! # Integrity
//!
//! Each PUT and part carries `x-amz-checksum-crc32c`, the CRC32C of its body, which the server
//! checks before storing anything (a mismatch, 400 `BadDigest`, is sent again from memory).
//! Every upload is created with `x-amz-checksum-type: FULL_OBJECT`, so each object ends up with
//! one CRC32C of all its bytes, however it was uploaded; an append by copy combines the copied
//! bytes' CRC with the new bytes' without reading anything back. What reads check, and what
//! they cannot: [`with_verify_reads`](OptionsBuilder::with_verify_reads) (`cat --no-verify`
//! turns it off).
//!
//! # S3 Express One Zone
//!
//! In a directory bucket (its name ends in `--<zone-id>--x-s3`, or
//! [`OptionsBuilder::with_directory_bucket`] says so), a [`flush`](std::io::Write::flush) is one
//! append: a `PutObject` of exactly the bytes S3 lacks, at `x-amz-write-offset-bytes` equal to
//! the object's size, so one request per flush and one byte uploaded per byte written, however
//! large the tail. The offset fences writers as `If-Match` does elsewhere: the first flush
//! wins and the other writer gets [`Error::Fenced`]. The first append creates the object with
//! the metadata above; an object is also sealed when S3 refuses more appends to it (10,000
//! parts), and large writes go out as appends of about [`Options::part_size`] while writing
//! goes on. Reads, follow and trim are unchanged.
//!
//! Give [`Storage::new`] a bucket on the zonal endpoint, virtual-hosted style, with the
//! account's credentials: every request then carries session credentials from
//! `CreateSession` (the `x-amz-s3session-token` header, signed for the `s3express` service),
//! renewed before their 5 minutes run out. Each append is billed as a `PutObject`.
//!
//! ```
//! # let server = s3_syncr_test_server::Server::start();
//! # let bucket = server.new_directory_bucket();
//! use std::io::Write;
//! use s3_syncr::s3::{Bucket, Region, creds::Credentials};
//! use s3_syncr::{Options, Storage};
//!
//! // On AWS: the bucket "logs--use1-az4--x-s3" in zone use1-az4 of us-east-1.
//! let region = Region::Custom {
//!     region: "us-east-1".into(),
//!     endpoint: "https://s3express-use1-az4.us-east-1.amazonaws.com".into(),
//! };
//! # let _ = (&region, Credentials::default);
//! // let bucket = Bucket::new("logs--use1-az4--x-s3", region, Credentials::default()?)?;
//! let mut log = Storage::new(bucket, "app.log", Options::default())?;
//! log.write_all(b"one record\n")?;
//! log.flush()?; // one append of these 11 bytes
//! log.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! This path is tested against the in-process test server's emulation of directory buckets
//! (written from AWS's documentation: appends, `InvalidWriteOffset`, `TooManyParts`,
//! `CreateSession`, listings without `start-after`), and the in-memory S3 of the simulator,
//! not against AWS itself. The emulation is path-style on one endpoint, and lists in key
//! order where AWS promises no order (this crate sorts what it lists).
//!
//! # Connections and TLS
//!
//! One pool of kept-alive connections and one TLS configuration per process and set of roots
//! (see [`with_ca_file`](OptionsBuilder::with_ca_file)): a connection keeps its TCP window, pays
//! the TCP and TLS handshakes once, and resumes TLS sessions (not with the `native-tls`
//! feature). The default roots are Mozilla's and the platform's (`SSL_CERT_FILE`,
//! `SSL_CERT_DIR`). An untrusted certificate fails every request (`InvalidData`, not retried);
//! verification is never skipped.
//!
//! # Configuration
//!
//! [`Storage::open`] reads the standard AWS environment (its docs list the variables). When no
//! keys are set, temporary credentials come from web identity (`AWS_WEB_IDENTITY_TOKEN_FILE`,
//! `AWS_ROLE_ARN`), container credentials (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` or
//! `_FULL_URI`, with `AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]`), else EC2 instance metadata
//! (IMDSv2), through rust-s3's `aws-creds` (STS at its global endpoint), and are renewed in the
//! background from 5 minutes before they expire. Not read:
//! `credential_process`, SSO, and a profile's `role_arn`/`source_profile`. For anything else,
//! build a bucket with the re-exported [`s3`] and call [`Storage::new`].
//!
//! [`Options`] holds the tuning, each setting documented on its getter. Typical servers:
//! AWS needs credentials and `AWS_REGION`; MinIO, SeaweedFS, Garage and Ceph RGW also
//! `AWS_ENDPOINT_URL=http://host:port`; Cloudflare R2
//! `AWS_ENDPOINT_URL=https://<account>.r2.cloudflarestorage.com` and `AWS_REGION=auto`.
//!
//! # Errors and logging
//!
//! Every failure is an [`Error`]; the `io` traits return it inside an [`std::io::Error`] whose
//! kind follows [`Error::kind`]. Messages never contain credentials, signatures or signed URLs.
//! Logging goes through the `log` crate: `debug!` for each request (operation, key, bytes,
//! milliseconds), `warn!` for each retry, `info!` when an object is sealed, `error!` when a
//! writer is fenced or a drop fails to flush.

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
pub use layout::{Ends, Gap, Listing, Object, PendingUpload};

/// The name 0.2 gave an [`Object`] of the stream.
#[deprecated(since = "0.3.0", note = "renamed `Object`: one name per idea")]
pub type Segment = Object;
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
