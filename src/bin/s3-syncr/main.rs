//! `s3-syncr`: append to, read, follow and inspect an append-only byte stream kept in S3.
//!
//! Built with the `cli` feature: `cargo install --path . --features cli`.

mod append;
mod cat;
mod connect;
mod info;
mod local;
mod shared;
mod signals;
mod trim;
mod units;

use std::fmt;
use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use s3_syncr::{Options, OptionsBuilder};

use connect::{Purpose, Store};
use trim::Cut;
use units::FlushEvery;

/// `cat`'s ranged GETs: 16 of 2 MiB in flight read as fast as 8 of 8 MiB through a 20 ms,
/// 50 MB/s-per-connection link, and faster on loopback, with a third less CPU, because a
/// command that reads a stream once faults every buffer in once (`benches/results.md`). An
/// 8 MiB object still fits the read-ahead, so it is checked before any of it is written out.
const CAT_READ_CHUNK: usize = 2 << 20;

/// Append-only byte streams in Amazon S3 or any S3-compatible store.
///
/// Stream LOCATION (s3://bucket/dir/name.ext, or bucket/dir/name.ext) is kept as objects
/// dir/name-<seq>.ext. Credentials, region and endpoint come from the standard AWS variables
/// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE, AWS_REGION,
/// AWS_ENDPOINT_URL, ...), which --endpoint and --region override. With --local DIR, or when
/// no endpoint and no credentials are configured at all (then in ./s3-syncr-data), the stream
/// is served from DIR by an S3 server embedded in the command: each directory in DIR is a
/// bucket. RUST_LOG=debug logs every S3 request on stderr.
#[derive(Debug, Parser)]
#[command(name = "s3-syncr", version)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Global {
    /// S3 endpoint URL, e.g. http://127.0.0.1:9000 [default: AWS_ENDPOINT_URL_S3,
    /// AWS_ENDPOINT_URL, else AWS]
    #[arg(
        long,
        global = true,
        value_name = "URL",
        conflicts_with = "local",
        help_heading = "Global options"
    )]
    endpoint: Option<String>,
    /// Region name [default: AWS_REGION, AWS_DEFAULT_REGION, the profile's region in
    /// ~/.aws/config, else us-east-1]
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        conflicts_with = "local",
        help_heading = "Global options"
    )]
    region: Option<String>,
    /// Serve the stream from DIR with an embedded S3 server (no account needed); a missing
    /// bucket directory is created by append and cat --follow
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        help_heading = "Global options"
    )]
    local: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Append standard input to the stream
    ///
    /// Every byte read is in S3 when append exits with status 0. On a failure it still tries
    /// to store what it has, then exits with status 1 and one line on stderr.
    Append {
        /// s3://bucket/dir/name.ext or bucket/dir/name.ext
        location: String,
        /// Also flush after this many bytes (64k, 1MiB, ...) or when the oldest unflushed byte
        /// is this old (500ms, 10s, 5min, 1h, 1d) [default: only at the end]. A flush re-uploads
        /// the tail object while it is below 5 MiB, then sends only the new bytes
        #[arg(long, value_name = "SIZE|DURATION", value_parser = units::parse_flush_every)]
        flush_every: Option<FlushEvery>,
        /// Seal an object once it holds this many MiB (or 64MiB, 1GiB, ...) and start the next
        /// one. `--min-size`, the original's name, is an alias
        #[arg(long, alias = "min-size", value_name = "MiB", default_value = "8", value_parser = units::parse_seal_size)]
        seal_size: u32,
        /// Parts of 8 MiB uploading at once, across objects, each on its own connection (1 to
        /// 64); memory is (N + 1) x 8 MiB at most. More is not faster on a shared link: objects
        /// are completed in stream order, so parts that all end together wait for each other
        #[arg(long, value_name = "N", default_value_t = 4,
              value_parser = clap::value_parser!(u8).range(1..=64))]
        write_ahead: u8,
    },
    /// Write the stream to standard output
    Cat {
        /// s3://bucket/dir/name.ext or bucket/dir/name.ext
        location: String,
        /// Start at this byte offset (a size: 1000, 64k, 1MiB, ...) [default: the first byte
        /// still stored]. Offsets do not move when older objects are trimmed
        #[arg(long, value_name = "OFFSET", value_parser = units::parse_size)]
        from: Option<u64>,
        /// At the end, wait for more bytes and write them as they come, like tail -f; stop
        /// with Ctrl-C
        #[arg(short, long)]
        follow: bool,
        /// The longest wait of --follow between two looks for new bytes, once the stream is
        /// idle (500ms, 1s, 1min, ...); while bytes arrive it looks every 50 ms or so
        #[arg(long, value_name = "DURATION", default_value = "1s",
              value_parser = units::parse_duration, requires = "follow")]
        interval: Duration,
        /// Ranged GETs of 2 MiB kept in flight ahead of the output, each on its own connection
        /// (0 to 64); memory is (N + 1) x 2 MiB at most. Many small GETs rather than the
        /// library's 4 of 8 MiB: as fast through a distant link, and a third less CPU, since
        /// fewer buffers are faulted in
        #[arg(long, value_name = "N", default_value_t = 16,
              value_parser = clap::value_parser!(u8).range(0..=64))]
        read_ahead: u8,
        /// Do not check the objects read whole against the CRC32C checksums the server
        /// stores for them (a mismatch stops the command before any byte of the object is
        /// written out)
        #[arg(long)]
        no_verify: bool,
    },
    /// List the stream's objects: key, sequence number, start offset, size, last modified; then
    /// the total
    Ls {
        /// s3://bucket/dir/name.ext or bucket/dir/name.ext
        location: String,
    },
    /// Show the stream's length, first offset and tail object; with --full, also its object
    /// count, gaps and pending uploads
    ///
    /// Without --full it sends a few requests at any object count: the end is found through the
    /// hint object writers keep, the front by the first key listed.
    Stat {
        /// s3://bucket/dir/name.ext or bucket/dir/name.ext
        location: String,
        /// The --seal-size the writers use, to tell whether the tail object is still open
        #[arg(long, alias = "min-size", value_name = "MiB", default_value = "8", value_parser = units::parse_seal_size)]
        seal_size: u32,
        /// Also count the objects and show the gaps between them and the multipart uploads left
        /// pending: lists every object (a request per 1,000) and the uploads
        #[arg(long)]
        full: bool,
    },
    /// Delete the stream's oldest objects, moving no offset
    ///
    /// Deletes whole objects, oldest first, that end at or before the offset given by one of
    /// --before, --keep or --older-than; never the last object. Offsets stay as they were: a
    /// reader reads from the first byte left, and one that saved a later offset finds the
    /// same bytes there. On a stream with a gap, only --before-gap works.
    #[command(group(ArgGroup::new("cut").required(true).args(["before", "keep", "older_than", "before_gap"])))]
    Trim {
        /// s3://bucket/dir/name.ext or bucket/dir/name.ext
        location: String,
        /// Delete the objects that end at or before this offset (1000, 64k, 1MiB, ...)
        #[arg(long, value_name = "OFFSET", value_parser = units::parse_size)]
        before: Option<u64>,
        /// Keep at least the newest SIZE bytes (64k, 1GiB, ...)
        #[arg(long, value_name = "SIZE", value_parser = units::parse_size)]
        keep: Option<u64>,
        /// Delete the oldest objects last modified longer ago than this (30min, 24h, 7d, ...)
        #[arg(long, value_name = "DURATION", value_parser = units::parse_duration)]
        older_than: Option<Duration>,
        /// Delete every object before the stream's last gap (objects missing between two
        /// present ones, as ls shows), so that it reads again from the object after the gap, at
        /// the offset that object records; refused if it records none. The bytes before the
        /// gap are lost
        #[arg(long)]
        before_gap: bool,
        /// Print what would be deleted, and delete nothing
        #[arg(long)]
        dry_run: bool,
    },
}

/// A failure to report on one line before exiting with status 1.
#[derive(Debug)]
pub struct Failure(pub String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<io::Error> for Failure {
    fn from(err: io::Error) -> Failure {
        Failure(err.to_string())
    }
}

impl From<s3_syncr::Error> for Failure {
    fn from(err: s3_syncr::Error) -> Failure {
        Failure(err.to_string())
    }
}

/// How a command ends when it does not succeed: one line on stderr and an exit status.
#[derive(Debug)]
pub struct Exit {
    /// What went wrong, for standard error after `s3-syncr: COMMAND LOCATION: `.
    pub message: String,
    /// The process's exit status.
    pub status: u8,
}

impl Exit {
    /// A usage error: status 2, as clap's own.
    pub fn usage(message: impl fmt::Display) -> Exit {
        Exit {
            message: message.to_string(),
            status: 2,
        }
    }
}

impl From<Failure> for Exit {
    fn from(failure: Failure) -> Exit {
        Exit {
            message: failure.0,
            status: 1,
        }
    }
}

impl From<io::Error> for Exit {
    fn from(err: io::Error) -> Exit {
        Failure::from(err).into()
    }
}

impl From<s3_syncr::Error> for Exit {
    fn from(err: s3_syncr::Error) -> Exit {
        match err {
            // A malformed location is the caller's to fix, like a malformed flag.
            s3_syncr::Error::InvalidLocation { .. } => Exit::usage(err),
            err => Failure::from(err).into(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs only when asked for: by default the one-line error says what failed.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("off"))
        .format_timestamp_millis()
        .init();

    let store = Store {
        endpoint: cli.global.endpoint,
        region: cli.global.region,
        local: cli.global.local,
    };
    let (name, location, result) = match cli.command {
        Command::Append {
            location,
            flush_every,
            seal_size,
            write_ahead,
        } => {
            let result = run_append(&store, &location, flush_every, seal_size, write_ahead);
            ("append", location, result)
        }
        Command::Cat {
            location,
            from,
            follow,
            interval,
            read_ahead,
            no_verify,
        } => {
            let follow = follow.then_some(interval);
            let options = Options::builder()
                .with_read_ahead(read_ahead.into())
                .with_read_chunk(CAT_READ_CHUNK)
                .with_verify_reads(!no_verify)
                .build();
            let result = options
                .map_err(Exit::from)
                .and_then(|options| run_cat(&store, &location, from, follow, options));
            ("cat", location, result)
        }
        Command::Ls { location } => {
            let result = run_info(&store, &location, None);
            ("ls", location, result)
        }
        Command::Stat {
            location,
            seal_size,
            full,
        } => {
            let result = run_info(&store, &location, Some((seal_size, full)));
            ("stat", location, result)
        }
        Command::Trim {
            location,
            before,
            keep,
            older_than,
            before_gap,
            dry_run,
        } => {
            let cut = match (before, keep, older_than) {
                (Some(offset), _, _) => Cut::Before(offset),
                (_, Some(size), _) => Cut::Keep(size),
                (_, _, Some(age)) => Cut::OlderThan(age),
                // clap requires one of the four.
                (None, None, None) if before_gap => Cut::BeforeGap,
                (None, None, None) => Cut::Before(0),
            };
            let result = run_trim(&store, &location, cut, dry_run);
            ("trim", location, result)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(exit) => {
            // One line, whatever the location and the message hold.
            let line = format!("s3-syncr: {name} {location}: {}", exit.message);
            eprintln!("{}", line.split_whitespace().collect::<Vec<_>>().join(" "));
            ExitCode::from(exit.status)
        }
    }
}

const MIB: usize = 1024 * 1024;

/// The options of a writer whose objects are sealed at `--seal-size` MiB.
fn options(seal_size: u32) -> OptionsBuilder {
    Options::builder().with_seal_size(seal_size as usize * MIB)
}

fn run_append(
    store: &Store,
    location: &str,
    flush_every: Option<FlushEvery>,
    seal_size: u32,
    write_ahead: u8,
) -> Result<(), Exit> {
    let options = options(seal_size)
        .with_write_ahead(write_ahead.into())
        .build()?;
    let session = store.open(location, options, Purpose::WriteOrWait)?;
    let bar = progress_bar(None, "appended", false);
    let result = append::run(
        session,
        flush_every,
        &bar,
        format!("s3-syncr: append {location}"),
    );
    bar.finish_and_clear();
    result
}

fn run_cat(
    store: &Store,
    location: &str,
    from: Option<u64>,
    follow: Option<Duration>,
    options: Options,
) -> Result<(), Exit> {
    let purpose = match follow {
        Some(_) => Purpose::WriteOrWait,
        None => Purpose::Read,
    };
    let mut session = store.open(location, options, purpose)?;
    Ok(cat::run(&mut session.storage, from, follow)?)
}

/// `ls` (`stat` `None`), or `stat` with its --seal-size and --full.
fn run_info(store: &Store, location: &str, stat: Option<(u32, bool)>) -> Result<(), Exit> {
    let mut session = store.open(location, Options::default(), Purpose::Read)?;
    if let Some((seal_size, false)) = stat {
        let ends = session.storage.ends()?;
        let out = &mut ClosableOutput::new(io::stdout().lock());
        return Ok(info::stat_ends(out, location, ends.as_ref(), seal_size)?);
    }
    // A gap is shown, not refused: these are the commands to look at it with.
    let listing = session.storage.listing()?;
    let out = &mut ClosableOutput::new(io::stdout().lock());
    match stat {
        None => info::ls(out, &listing),
        Some((seal_size, _)) => info::stat(out, location, &listing, seal_size)
            .and_then(|()| info::uploads(out, &session.storage.pending_uploads())),
    }?;
    Ok(())
}

fn run_trim(store: &Store, location: &str, cut: Cut, dry_run: bool) -> Result<(), Exit> {
    let mut session = store.open(location, Options::default(), Purpose::Read)?;
    let out = &mut ClosableOutput::new(io::stdout().lock());
    Ok(trim::run(out, &mut session.storage, cut, dry_run)?)
}

/// Standard output that a reader may close (`s3-syncr ls ... | head -1`): the command then goes
/// on without it, so that `trim` deletes what it said it would whether or not anyone reads.
struct ClosableOutput<W> {
    inner: W,
    closed: bool,
}

impl<W: Write> ClosableOutput<W> {
    fn new(inner: W) -> Self {
        ClosableOutput {
            inner,
            closed: false,
        }
    }

    fn unless_closed(&mut self, result: io::Result<usize>, len: usize) -> io::Result<usize> {
        match result {
            Err(err) if err.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(len)
            }
            other => other,
        }
    }
}

impl<W: Write> Write for ClosableOutput<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.closed {
            return Ok(buf.len());
        }
        let written = self.inner.write(buf);
        self.unless_closed(written, buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        let flushed = self.inner.flush().map(|()| 0);
        self.unless_closed(flushed, 0).map(drop)
    }
}

/// Whether a progress bar has a terminal of its own: standard error is one, and, for a command
/// that writes to standard output (`uses_stdout`), not the one standard output goes to, where
/// the bar would be drawn over the bytes.
pub fn progress_wanted(uses_stdout: bool) -> bool {
    let stderr = io::stderr();
    if !stderr.is_terminal() {
        return false;
    }
    let stdout = io::stdout();
    let terminal = |fd: BorrowedFd<'_>| {
        let file = File::from(fd.try_clone_to_owned().ok()?);
        file.metadata().ok().map(|meta| meta.rdev())
    };
    !uses_stdout || !stdout.is_terminal() || terminal(stdout.as_fd()) != terminal(stderr.as_fd())
}

/// A progress bar on stderr if [`progress_wanted`], else a hidden one: a bar towards `len` if it
/// is known, else a counter of bytes `done` (`appended`, `written`).
pub fn progress_bar(len: Option<u64>, done: &str, uses_stdout: bool) -> ProgressBar {
    if !progress_wanted(uses_stdout) {
        return ProgressBar::hidden();
    }
    let (bar, template) = match len {
        Some(len) => (
            ProgressBar::new(len),
            "{bar:30} {bytes}/{total_bytes} ({binary_bytes_per_sec}, {eta} left) {msg}".to_owned(),
        ),
        None => (
            ProgressBar::new_spinner(),
            format!("{{spinner}} {{bytes}} {done} ({{binary_bytes_per_sec}}, {{elapsed}}) {{msg}}"),
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
