//! Where a command's stream lives: S3 as the environment and flags configure it, or an S3
//! server embedded in the process over a local directory (`--local DIR`).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};

use s3::creds::Credentials;
use s3::{Bucket, Region};
use s3_syncr::{Error, Options, Storage};
use s3s::validation::NameValidation;
use tokio::runtime::Runtime;

use crate::local;
use crate::shared::Shared;
use crate::{Exit, Failure};

/// The directory used when nothing at all is configured.
pub const DEFAULT_LOCAL_DIR: &str = "s3-syncr-data";

/// The global flags that choose the store.
#[derive(Debug, Clone, Default)]
pub struct Store {
    /// `--endpoint`: overrides `AWS_ENDPOINT_URL_S3` and `AWS_ENDPOINT_URL`.
    pub endpoint: Option<String>,
    /// `--region`: overrides `AWS_REGION` and `AWS_DEFAULT_REGION`.
    pub region: Option<String>,
    /// `--local`: serve this directory instead.
    pub local: Option<PathBuf>,
}

/// An open stream, and the embedded server it talks to in local mode.
pub struct Session {
    /// The stream. Declared first so that it is dropped (and flushes) before the server stops;
    /// `append` moves it out to close it, so a `Session` has no `Drop` of its own.
    pub storage: Storage,
    /// Held only to be dropped after the stream.
    _server: Option<LocalServer>,
}

/// The embedded server, stopped when dropped without waiting for its tasks.
struct LocalServer(Option<Runtime>);

impl Drop for LocalServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// What opening is for: a writer or a follower may create the bucket of a local store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Only reads what is there.
    Read,
    /// Writes, or waits for bytes to come: in a local store, a missing bucket is created.
    WriteOrWait,
}

/// Where a location's stream is kept.
enum Target<'a> {
    S3,
    Local(&'a Path),
}

impl Store {
    /// Opens the stream at `location` (`s3://bucket/name` or `bucket/name`).
    ///
    /// The location is checked first, before any request and before any directory is created.
    /// An `s3://` location always means S3 (or `--local`): without credentials it fails rather
    /// than landing on the local disk unseen.
    pub fn open(
        &self,
        location: &str,
        options: Options,
        purpose: Purpose,
    ) -> Result<Session, Exit> {
        let explicit_s3 = location.starts_with("s3://");
        let target = match &self.local {
            Some(dir) => Target::Local(dir),
            None if explicit_s3 => Target::S3,
            None if self.endpoint.is_none() && self.region.is_none() && !aws_configured() => {
                Target::Local(Path::new(DEFAULT_LOCAL_DIR))
            }
            None => Target::S3,
        };
        match target {
            Target::Local(_) if !explicit_s3 => Location::parse(location)
                .and_then(|parsed| Storage::check_name(&parsed.name))
                .map_err(|err| match err {
                    // Named by the whole location, as the user wrote it.
                    Error::InvalidLocation { reason, .. } => Error::InvalidLocation {
                        location: location.to_owned(),
                        reason,
                    },
                    err => err,
                })?,
            _ => Storage::check_location(location)?,
        }
        let dir = match target {
            Target::Local(dir) => dir,
            Target::S3 => return self.open_s3(location, options),
        };
        if self.local.is_none() {
            eprintln!(
                "s3-syncr: no S3 endpoint or AWS credentials configured: using the LOCAL store \
                 ./{DEFAULT_LOCAL_DIR}, not S3 (choose one with --local DIR, or set --endpoint \
                 or AWS_*; an s3:// location always means S3)"
            );
        }
        open_local(dir, location, options, purpose)
    }

    fn open_s3(&self, location: &str, options: Options) -> Result<Session, Exit> {
        // The library's reading of the environment, with the flags' endpoint and region first.
        let storage = Storage::open_with_env(location, options, |key| {
            let flag = match key {
                "AWS_ENDPOINT_URL_S3" | "AWS_ENDPOINT_URL" => &self.endpoint,
                "AWS_REGION" | "AWS_DEFAULT_REGION" => &self.region,
                _ => &None,
            };
            flag.clone().or_else(|| std::env::var(key).ok())
        })
        .map_err(|err| match err {
            Error::NoCredentials => Exit::from(Failure(no_credentials())),
            err => Exit::from(err),
        })?;
        Ok(Session {
            storage,
            _server: None,
        })
    }
}

/// What was looked for when no credentials were found, in one line.
fn no_credentials() -> String {
    let file = var("AWS_SHARED_CREDENTIALS_FILE").unwrap_or_else(|| "~/.aws/credentials".into());
    let profile = var("AWS_PROFILE").unwrap_or_else(|| "default".into());
    format!(
        "no AWS credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set, {file} has \
         no profile [{profile}] with keys, no web identity (AWS_WEB_IDENTITY_TOKEN_FILE, \
         AWS_ROLE_ARN) or container credentials (AWS_CONTAINER_CREDENTIALS_*) are configured, \
         and this is not an EC2 instance with a role (for a store on this machine, use --local \
         DIR)"
    )
}

/// A non-empty environment variable.
fn var(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|value| !value.is_empty())
}

/// Whether the environment names an endpoint or any source of credentials.
fn aws_configured() -> bool {
    const VARS: [&str; 9] = [
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_PROFILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ];
    VARS.iter().any(|key| var(key).is_some()) || Credentials::from_profile(None).is_ok()
}

/// Serves `dir` with s3s-fs on loopback and opens the stream there: each directory in `dir` is a
/// bucket, each file an object. `location` was checked.
fn open_local(
    dir: &Path,
    location: &str,
    options: Options,
    purpose: Purpose,
) -> Result<Session, Exit> {
    let location = Location::parse(location)?;
    if purpose == Purpose::WriteOrWait {
        let bucket_dir = dir.join(&location.bucket);
        std::fs::create_dir_all(&bucket_dir)
            .map_err(|err| Failure(format!("cannot create {}: {err}", bucket_dir.display())))?;
    }
    // s3s-fs's own error tells less than the directory's.
    std::fs::read_dir(dir)
        .map_err(|err| Failure(format!("local store {}: {err}", dir.display())))?;
    let fs =
        Shared::new(dir).map_err(|err| Failure(format!("local store {}: {err}", dir.display())))?;
    // Fresh keys each run: nothing else on the machine can sign for this server.
    let (access_key, secret_key) = (random_hex(), random_hex());
    let auth = s3s::auth::SimpleAuth::from_single(access_key.as_str(), secret_key.as_str());
    let (endpoint, runtime) = local::serve(fs, auth, DirectoryNames)
        .map_err(|err| Failure(format!("cannot start the local S3 server: {err}")))?;
    let region = Region::Custom {
        region: "us-east-1".into(),
        endpoint,
    };
    let credentials = Credentials::new(Some(&access_key), Some(&secret_key), None, None, None)
        .map_err(|err| Failure(format!("local credentials: {err}")))?;
    let bucket = Bucket::new(&location.bucket, region, credentials)
        .map_err(|err| Failure(format!("local bucket {:?}: {err}", location.bucket)))?
        .with_path_style();
    // The server must outlive the stream's last flush: a `Session` drops the stream first.
    let server = LocalServer(Some(runtime));
    Ok(Session {
        storage: Storage::new(*bucket, &location.name, options)?,
        _server: Some(server),
    })
}

fn random_hex() -> String {
    let state = RandomState::new();
    format!("{:016x}{:016x}", state.hash_one(1u8), state.hash_one(2u8))
}

/// A local store's location split into bucket and stream name. Local buckets are directory
/// names, looser than S3's (`x/log.txt` works), so the library's parsing does not apply to a bare
/// `bucket/name`; an `s3://` one is checked by S3's rules first, so that it also works on S3.
#[derive(Debug, PartialEq, Eq)]
struct Location {
    bucket: String,
    name: String,
}

impl Location {
    fn parse(location: &str) -> Result<Location, Error> {
        let invalid = |reason| Error::InvalidLocation {
            location: location.to_owned(),
            reason,
        };
        let rest = location.strip_prefix("s3://").unwrap_or(location);
        match rest.split_once('/') {
            Some((bucket, name)) if DirectoryNames.validate_bucket_name(bucket) => Ok(Location {
                bucket: bucket.to_owned(),
                name: name.to_owned(),
            }),
            Some(_) => Err(invalid(
                "a local bucket name has 1 to 63 letters, digits, '.', '-' and '_', \
                 and does not start with '.'",
            )),
            None => Err(invalid("expected bucket/name")),
        }
    }
}

/// The bucket names of a local store: plain directory names, so that `x/log.txt` works and
/// nothing leads out of the directory (`..`) or onto the server's hidden temporary files.
#[derive(Debug, Clone, Copy)]
pub struct DirectoryNames;

impl NameValidation for DirectoryNames {
    fn validate_bucket_name(&self, name: &str) -> bool {
        (1..=63).contains(&name.len())
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_locations() {
        for good in ["x/log.txt", "My_Logs/a/b", "a.b-c/x"] {
            assert!(Location::parse(good).is_ok(), "{good:?}");
        }
        let ok = Location::parse("s3://x/dir/log.txt").unwrap();
        assert_eq!((ok.bucket.as_str(), ok.name.as_str()), ("x", "dir/log.txt"));
        for bad in [
            "../x/y",
            "./x",
            ".hidden/x",
            "a b/x",
            "/x",
            "x",
            "s3:///x",
            "http://x/y",
        ] {
            assert!(Location::parse(bad).is_err(), "{bad:?}");
        }
    }
}
