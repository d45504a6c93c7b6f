//! Where a command's stream lives: S3 as the environment and flags configure it, or an S3
//! server embedded in the process over a local directory (`--local DIR`).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};

use s3::creds::Credentials;
use s3::{Bucket, Region};
use s3_syncr::{Error, Options, Storage};
use tokio::runtime::Runtime;

use crate::Failure;
use crate::local;

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
    /// The stream. Declared first so that it is dropped (and flushes) before the server stops.
    pub storage: Storage,
    server: Option<Runtime>,
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(runtime) = self.server.take() {
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

impl Store {
    /// Opens the stream at `location` (`s3://bucket/name` or `bucket/name`).
    pub fn open(
        &self,
        location: &str,
        options: Options,
        purpose: Purpose,
    ) -> Result<Session, Failure> {
        if let Some(dir) = &self.local {
            return open_local(dir, location, options, purpose);
        }
        if self.endpoint.is_none() && self.region.is_none() && !aws_configured() {
            eprintln!(
                "s3-syncr: no S3 endpoint or AWS credentials configured: using the local store \
                 ./{DEFAULT_LOCAL_DIR} (choose one with --local DIR, or set --endpoint or AWS_*)"
            );
            return open_local(Path::new(DEFAULT_LOCAL_DIR), location, options, purpose);
        }
        let storage = if self.endpoint.is_none() && self.region.is_none() {
            // The library's own reading of the environment.
            Storage::open(location, options)?
        } else {
            let location = Location::parse(location)?;
            let bucket = self.env_bucket(&location.bucket)?;
            Storage::new(bucket, &location.name, options)?
        };
        Ok(Session {
            storage,
            server: None,
        })
    }

    /// The bucket `Storage::open` would build from the environment, with the flags' endpoint and
    /// region instead of the environment's.
    fn env_bucket(&self, name: &str) -> Result<Bucket, Error> {
        let endpoint = self
            .endpoint
            .clone()
            .or_else(|| var("AWS_ENDPOINT_URL_S3"))
            .or_else(|| var("AWS_ENDPOINT_URL"));
        let region_name = self
            .region
            .clone()
            .or_else(|| var("AWS_REGION"))
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_owned());
        let credentials = match var("AWS_ACCESS_KEY_ID") {
            Some(access_key) => {
                let secret_key = var("AWS_SECRET_ACCESS_KEY").ok_or_else(|| {
                    Error::InvalidConfig(
                        "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not".into(),
                    )
                })?;
                let token = var("AWS_SESSION_TOKEN");
                Credentials::new(
                    Some(&access_key),
                    Some(&secret_key),
                    None,
                    token.as_deref(),
                    None,
                )
            }
            None => Credentials::from_profile(var("AWS_PROFILE").as_deref()),
        }
        .map_err(|_| Error::NoCredentials)?;
        // A custom endpoint means path-style addressing, which every S3-compatible server takes.
        let path_style = endpoint.is_some();
        let region = match endpoint {
            Some(endpoint) => {
                if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                    return Err(Error::InvalidConfig(format!(
                        "endpoint {endpoint:?} must start with http:// or https://"
                    )));
                }
                Region::Custom {
                    region: region_name,
                    endpoint: endpoint.trim_end_matches('/').to_owned(),
                }
            }
            None => match region_name.parse::<Region>() {
                // rust-s3 takes an unknown name for an endpoint; give it AWS's instead.
                Ok(Region::Custom { region, .. }) => Region::Custom {
                    endpoint: format!("https://s3.{region}.amazonaws.com"),
                    region,
                },
                Ok(region) => region,
                Err(_) => {
                    return Err(Error::InvalidConfig(format!(
                        "invalid region {region_name:?}"
                    )));
                }
            },
        };
        let bucket = Bucket::new(name, region, credentials).map_err(|err| {
            Error::InvalidConfig(format!("cannot address bucket {name:?}: {err}"))
        })?;
        Ok(if path_style {
            *bucket.with_path_style()
        } else {
            *bucket
        })
    }
}

/// A non-empty environment variable.
fn var(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|value| !value.is_empty())
}

/// Whether the environment names an endpoint or any source of credentials.
fn aws_configured() -> bool {
    const VARS: [&str; 6] = [
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_PROFILE",
        "AWS_SHARED_CREDENTIALS_FILE",
    ];
    VARS.iter().any(|key| var(key).is_some()) || Credentials::from_profile(None).is_ok()
}

/// Serves `dir` with s3s-fs on loopback and opens the stream there: each directory in `dir` is a
/// bucket, each file an object.
fn open_local(
    dir: &Path,
    location: &str,
    options: Options,
    purpose: Purpose,
) -> Result<Session, Failure> {
    let location = Location::parse(location)?;
    if purpose == Purpose::WriteOrWait {
        let bucket_dir = dir.join(&location.bucket);
        std::fs::create_dir_all(&bucket_dir)
            .map_err(|err| Failure(format!("cannot create {}: {err}", bucket_dir.display())))?;
    }
    let fs = s3s_fs::FileSystem::new(dir)
        .map_err(|err| Failure(format!("local store {}: {err}", dir.display())))?;
    // Fresh keys each run: nothing else on the machine can sign for this server.
    let (access_key, secret_key) = (random_hex(), random_hex());
    let (endpoint, runtime) = local::serve(fs, &access_key, &secret_key)
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
    let session = Session {
        storage: match Storage::new(*bucket, &location.name, options) {
            Ok(storage) => storage,
            Err(err) => {
                runtime.shutdown_background();
                return Err(err.into());
            }
        },
        server: Some(runtime),
    };
    Ok(session)
}

fn random_hex() -> String {
    let state = RandomState::new();
    format!("{:016x}{:016x}", state.hash_one(1u8), state.hash_one(2u8))
}

/// A location split into bucket and stream name, for the cases where the command builds the
/// bucket itself.
#[derive(Debug, PartialEq, Eq)]
struct Location {
    bucket: String,
    name: String,
}

impl Location {
    /// Splits `s3://bucket/name` or `bucket/name`; the library checks the name. The bucket is
    /// checked against S3's naming rules here, as it becomes a directory name in a local store.
    fn parse(location: &str) -> Result<Location, Error> {
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
        let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let valid = (3..=63).contains(&bucket.len())
            && bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
            && edge(bucket.chars().next())
            && edge(bucket.chars().last())
            && !bucket.contains("..");
        if !valid {
            return Err(invalid(
                "a bucket name has 3 to 63 lowercase letters, digits, '.' and '-', \
                 and starts and ends with a letter or digit",
            ));
        }
        Ok(Location {
            bucket: bucket.to_owned(),
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        let ok = Location::parse("s3://my-bucket/dir/log.txt").unwrap();
        assert_eq!((ok.bucket.as_str(), ok.name.as_str()), ("my-bucket", "dir/log.txt"));
        assert_eq!(Location::parse("abc/x").unwrap().bucket, "abc");
        for bad in ["", "abc", "http://abc/x", "ab/x", "../x/y", "a..b/x", "Abc/x", "-abc/x"] {
            assert!(
                matches!(Location::parse(bad), Err(Error::InvalidLocation { .. })),
                "{bad:?}"
            );
        }
    }
}
