//! The bucket [`Storage::open`](crate::Storage::open) builds from the standard AWS environment.

use s3::creds::Credentials;
use s3::{Bucket, Region};

use crate::Error;

/// Builds a bucket handle from environment variables, read through `var` so that tests need not
/// touch the process environment:
///
/// - credentials: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, else the
///   shared credentials file (`AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`, profile
///   `AWS_PROFILE` or `default`), else web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` and
///   `AWS_ROLE_ARN`), container credentials (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` or
///   `_FULL_URI`), EC2 instance metadata (IMDSv2);
/// - region: `AWS_REGION`, `AWS_DEFAULT_REGION`, else the `region` of profile `AWS_PROFILE` (or
///   `default`) in the shared config file (`AWS_CONFIG_FILE` or `~/.aws/config`), else
///   `us-east-1`;
/// - endpoint: `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, else AWS; a custom endpoint means
///   path-style addressing, which every S3-compatible server understands.
pub(crate) fn bucket(name: &str, var: impl Fn(&str) -> Option<String>) -> Result<Bucket, Error> {
    let var = |key: &str| var(key).filter(|value| !value.is_empty());
    let region_name = var("AWS_REGION")
        .or_else(|| var("AWS_DEFAULT_REGION"))
        .or_else(|| config_region(&var))
        .unwrap_or_else(|| "us-east-1".to_owned());
    let endpoint = var("AWS_ENDPOINT_URL_S3").or_else(|| var("AWS_ENDPOINT_URL"));

    let credentials = match var("AWS_ACCESS_KEY_ID") {
        Some(access_key) => {
            let secret_key = var("AWS_SECRET_ACCESS_KEY").ok_or_else(|| {
                Error::config("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")
            })?;
            let session_token = var("AWS_SESSION_TOKEN");
            Credentials::new(
                Some(&access_key),
                Some(&secret_key),
                None,
                session_token.as_deref(),
                None,
            )
        }
        None => Credentials::from_profile(var("AWS_PROFILE").as_deref())
            // The rest of the AWS SDKs' chain, read by rust-s3's aws-creds from the process
            // environment. Each source fails at once where it does not apply (its variables
            // unset, not an EC2 machine). Their credentials are temporary and carry their
            // source, from which every request renews them before they expire (client/renew.rs).
            .or_else(|_| Credentials::from_sts_env("s3-syncr"))
            .or_else(|_| Credentials::from_container_credentials_provider())
            .or_else(|_| Credentials::from_instance_metadata_v2(false)),
    }
    .map_err(|_| Error::NoCredentials)?;

    let region = match &endpoint {
        Some(endpoint) => {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(Error::config(format!(
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
                return Err(Error::config(format!("invalid region {region_name:?}")));
            }
        },
    };
    let mut bucket = Bucket::new(name, region, credentials)
        .map_err(|err| Error::config(format!("cannot address bucket {name:?}: {err}")))?;
    if endpoint.is_some() {
        bucket.set_path_style();
    }
    Ok(*bucket)
}

/// The `region` of the profile in the shared config file, as the AWS CLI and SDKs read it: the
/// section `[default]`, or `[profile NAME]` for `AWS_PROFILE=NAME`. A missing or unreadable file
/// is no region.
fn config_region(var: &impl Fn(&str) -> Option<String>) -> Option<String> {
    let path = var("AWS_CONFIG_FILE").or_else(|| Some(format!("{}/.aws/config", var("HOME")?)))?;
    let text = std::fs::read_to_string(path).ok()?;
    let section = match var("AWS_PROFILE") {
        Some(profile) if profile != "default" => format!("profile {profile}"),
        _ => "default".to_owned(),
    };
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
        } else if let Some((key, value)) = line.split_once('=')
            && inside
            && key.trim() == "region"
        {
            return Some(value.trim().to_owned()).filter(|region| !region.is_empty());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn build(vars: &[(&str, &str)]) -> Result<Bucket, Error> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        bucket("my-bucket", |key| vars.get(key).cloned())
    }

    const KEYS: [(&str, &str); 2] = [
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI"),
    ];

    #[test]
    fn custom_endpoint_means_path_style() {
        let mut vars = KEYS.to_vec();
        vars.push(("AWS_ENDPOINT_URL", "http://127.0.0.1:9000/"));
        vars.push(("AWS_REGION", "garage"));
        let bucket = build(&vars).unwrap();
        assert!(bucket.is_path_style());
        assert_eq!(bucket.region().endpoint(), "http://127.0.0.1:9000");
        assert_eq!(bucket.region().to_string(), "garage");

        vars.push(("AWS_ENDPOINT_URL_S3", "https://s3.example.com"));
        let bucket = build(&vars).unwrap();
        assert_eq!(bucket.region().endpoint(), "https://s3.example.com");
    }

    #[test]
    fn aws_regions_and_defaults() {
        let bucket = build(&KEYS).unwrap();
        assert_eq!(bucket.region().to_string(), "us-east-1");
        assert!(!bucket.is_path_style());
        let mut vars = KEYS.to_vec();
        vars.push(("AWS_DEFAULT_REGION", "eu-west-1"));
        assert_eq!(build(&vars).unwrap().region().to_string(), "eu-west-1");
        vars.push(("AWS_REGION", "ap-south-7"));
        let bucket = build(&vars).unwrap();
        assert_eq!(
            bucket.region().endpoint(),
            "https://s3.ap-south-7.amazonaws.com"
        );
    }

    #[test]
    fn region_from_the_profiles_config() {
        let dir = std::env::temp_dir().join(format!("s3-syncr-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config");
        std::fs::write(
            &config,
            "[default]\nregion = eu-west-3\n\n[profile logs]\noutput = json\nregion=ap-south-1\n",
        )
        .unwrap();
        let config = config.to_str().unwrap();
        let region = |extra: &[(&str, &str)]| {
            let mut vars = KEYS.to_vec();
            vars.push(("AWS_CONFIG_FILE", config));
            vars.extend(extra);
            build(&vars).unwrap().region().to_string()
        };
        assert_eq!(region(&[]), "eu-west-3");
        assert_eq!(region(&[("AWS_PROFILE", "logs")]), "ap-south-1");
        assert_eq!(region(&[("AWS_PROFILE", "none")]), "us-east-1");
        assert_eq!(region(&[("AWS_REGION", "us-west-2")]), "us-west-2");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_configuration_is_rejected() {
        let no_secret = build(&[("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")]);
        assert!(matches!(no_secret, Err(Error::InvalidConfig { .. })));
        let mut vars = KEYS.to_vec();
        vars.push(("AWS_ENDPOINT_URL", "127.0.0.1:9000"));
        assert!(matches!(build(&vars), Err(Error::InvalidConfig { .. })));
        let no_file = build(&[("AWS_PROFILE", "s3-syncr-no-such-profile")]);
        assert!(matches!(no_file, Err(Error::NoCredentials)));
    }
}
