//! `s3-syncr`: append to, read, follow and inspect an append-only byte stream kept in S3.
//!
//! Built with the `cli` feature: `cargo install --path . --features cli`.
#![forbid(unsafe_code)]

mod append;
mod cat;
mod connect;
mod info;
mod local;
mod trim;
mod units;

use std::fmt;
use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use s3_syncr::Options;

use connect::{Purpose, Store};
use trim::Cut;
use units::FlushEvery;

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
    #[arg(long, global = true, value_name = "URL", conflicts_with = "local")]
    endpoint: Option<String>,
    /// Region name [default: AWS_REGION, AWS_DEFAULT_REGION, else us-east-1]
    #[arg(long, global = true, value_name = "NAME", conflicts_with = "local")]
    region: Option<String>,
    /// Serve the stream from DIR with an embedded S3 server (no account needed); a missing
    /// bucket directory is created by append and cat --follow
    #[arg(long, global = true, value_name = "DIR")]
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
        /// is this old (500ms, 10s, 5min, ...) [default: only at the end]. A flush re-uploads
        /// the tail object while it is below 5 MiB, then sends only the new bytes
        #[arg(long, value_name = "SIZE|DURATION", value_parser = units::parse_flush_every)]
        flush_every: Option<FlushEvery>,
        /// Seal an object once it holds this many MiB and start the next one
        #[arg(long, value_name = "MiB", default_value_t = 8,
              value_parser = clap::value_parser!(u32).range(1..))]
        min_size: u32,
        /// Parts of 8 MiB uploading at once, across objects, each on its own connection (1 to
        /// 64); memory is (N + 1) x 8 MiB at most. More is not faster on a shared link: objects
        /// are completed in stream order, so parts that all end together wait for each other
        #[arg(long, value_name = "N", default_value_t = 4)]
        write_ahead: usize,
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
        /// How often --follow looks for new bytes (500ms, 1s, 1min, ...)
        #[arg(long, value_name = "DURATION", default_value = "1s",
              value_parser = units::parse_duration, requires = "follow")]
        interval: Duration,
        /// Ranged GETs kept in flight ahead of the output, each on its own connection (0 to
        /// 64); memory is (N + 1) x 8 MiB at most. More than the library's default (4): a
        /// command that only streams can spend the memory on a distant server's round trips
        #[arg(long, value_name = "N", default_value_t = 8)]
        read_ahead: usize,
    },
    /// List the stream's objects: key, sequence number, start offset, size, last modified; then
    /// the total
    Ls {
        /// s3://bucket/dir/name.ext or bucket/dir/name.ext
        location: String,
    },
    /// Show the stream's first offset, length, object count and tail object
    Stat {
        /// s3://bucket/dir/name.ext or bucket/dir/name.ext
        location: String,
        /// The --min-size the writers use, to tell whether the tail object is still open
        #[arg(long, value_name = "MiB", default_value_t = 8,
              value_parser = clap::value_parser!(u32).range(1..))]
        min_size: u32,
    },
    /// Delete the stream's oldest objects, moving no offset
    ///
    /// Deletes whole objects, oldest first, that end at or before the offset given by one of
    /// --before, --keep or --older-than; never the last object. Offsets stay as they were: a
    /// reader reads from the first byte left, and one that saved a later offset finds the
    /// same bytes there.
    #[command(group(ArgGroup::new("cut").required(true).args(["before", "keep", "older_than"])))]
    Trim {
        /// s3://bucket/dir/name.ext or bucket/dir/name.ext
        location: String,
        /// Delete the objects that end at or before this offset (1000, 64k, 1MiB, ...)
        #[arg(long, value_name = "OFFSET", value_parser = units::parse_size)]
        before: Option<u64>,
        /// Keep at least the newest SIZE bytes (64k, 1GiB, ...)
        #[arg(long, value_name = "SIZE", value_parser = units::parse_size)]
        keep: Option<u64>,
        /// Delete the oldest objects last modified longer ago than this (30min, 24h, ...)
        #[arg(long, value_name = "DURATION", value_parser = units::parse_duration)]
        older_than: Option<Duration>,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs only when asked for: by default the one-line error says what failed.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("off"))
        .format_timestamp_millis()
        .init();
    // The library owns the retry policy; rust-s3's own retries would stack under it.
    s3::set_retries(0);

    let store = Store {
        endpoint: cli.global.endpoint,
        region: cli.global.region,
        local: cli.global.local,
    };
    let (name, location, result) = match cli.command {
        Command::Append {
            location,
            flush_every,
            min_size,
            write_ahead,
        } => {
            let result = run_append(&store, &location, flush_every, min_size, write_ahead);
            ("append", location, result)
        }
        Command::Cat {
            location,
            from,
            follow,
            interval,
            read_ahead,
        } => {
            let follow = follow.then_some(interval);
            let result = run_cat(&store, &location, from, follow, read_ahead);
            ("cat", location, result)
        }
        Command::Ls { location } => {
            let result = run_info(&store, &location, None);
            ("ls", location, result)
        }
        Command::Stat { location, min_size } => {
            let result = run_info(&store, &location, Some(min_size));
            ("stat", location, result)
        }
        Command::Trim {
            location,
            before,
            keep,
            older_than,
            dry_run,
        } => {
            let cut = match (before, keep, older_than) {
                (Some(offset), _, _) => Cut::Before(offset),
                (_, Some(size), _) => Cut::Keep(size),
                (_, _, Some(age)) => Cut::OlderThan(age),
                // clap requires one of them.
                (None, None, None) => Cut::Before(0),
            };
            let result = run_trim(&store, &location, cut, dry_run);
            ("trim", location, result)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            // One line, whatever the location and the message hold.
            let line = format!("s3-syncr: {name} {location}: {failure}");
            eprintln!("{}", line.split_whitespace().collect::<Vec<_>>().join(" "));
            ExitCode::FAILURE
        }
    }
}

fn options(min_size: u32) -> Options {
    Options {
        min_size: min_size as usize,
        ..Options::default()
    }
}

fn run_append(
    store: &Store,
    location: &str,
    flush_every: Option<FlushEvery>,
    min_size: u32,
    write_ahead: usize,
) -> Result<(), Failure> {
    let options = Options {
        write_ahead,
        ..options(min_size)
    };
    let session = store.open(location, options, Purpose::WriteOrWait)?;
    let bar = progress_bar(None, "appended");
    let result = append::run(session, flush_every, &bar);
    bar.finish_and_clear();
    result
}

fn run_cat(
    store: &Store,
    location: &str,
    from: Option<u64>,
    follow: Option<Duration>,
    read_ahead: usize,
) -> Result<(), Failure> {
    let purpose = match follow {
        Some(_) => Purpose::WriteOrWait,
        None => Purpose::Read,
    };
    let options = Options {
        read_ahead,
        ..Options::default()
    };
    let mut session = store.open(location, options, purpose)?;
    cat::run(&mut session.storage, from, follow, progress_bar)
}

fn run_info(store: &Store, location: &str, stat_min_size: Option<u32>) -> Result<(), Failure> {
    let mut session = store.open(location, Options::default(), Purpose::Read)?;
    let segments = session.storage.segments()?;
    let out = &mut io::stdout().lock();
    let written = match stat_min_size {
        None => info::ls(out, &segments),
        Some(min_size) => info::stat(out, location, &segments, min_size)
            .and_then(|()| info::uploads(out, &session.storage.pending_uploads())),
    };
    ignore_broken_pipe(written)?;
    Ok(())
}

fn run_trim(store: &Store, location: &str, cut: Cut, dry_run: bool) -> Result<(), Failure> {
    let mut session = store.open(location, Options::default(), Purpose::Read)?;
    trim::run(&mut io::stdout().lock(), &mut session.storage, cut, dry_run)
}

/// A progress bar on stderr when it is a terminal, else a hidden one: a bar towards `len` if it
/// is known, else a counter of bytes `done` (`appended`, `written`).
fn progress_bar(len: Option<u64>, done: &str) -> ProgressBar {
    if !io::stderr().is_terminal() {
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

/// A closed standard output (`s3-syncr cat ... | head`) ends the command quietly.
fn ignore_broken_pipe(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
