//! Container credentials from an endpoint on loopback, fetched again once expired and renewed before they expire.

use super::*;

#[test]
fn container_credentials_from_a_local_endpoint_are_refreshed() {
    // The in-process server: it takes any session token the signature covers.
    let server = Server::start();
    let bucket = server.new_bucket();
    let location = format!("s3://{}/container.log", bucket.name());
    let (access_key, secret_key) = server.keys();
    // Already expired: every request fetches them anew, as it would an hour later.
    let body = container_credentials(access_key, secret_key, "2000-01-01T00:00:00Z");
    let (uri, fetches) = credentials_endpoint(move |_| body.clone());
    let home = tempfile::tempdir().unwrap();
    let container = || from_container(&server, home.path(), &uri);
    ok(container(), &["append", &location], b"from a container\n");
    assert_eq!(
        ok(container(), &["cat", &location], b""),
        b"from a container\n"
    );
    let fetched: Vec<bool> = fetches.try_iter().collect();
    assert!(fetched.iter().all(|&authorized| authorized), "{fetched:?}");
    // Two commands, each fetching at start and again before its requests.
    assert!(fetched.len() > 2, "fetched {} times", fetched.len());
}

#[test]
fn credentials_about_to_expire_are_renewed_before_a_request() {
    let server = Server::start();
    let bucket = server.new_bucket();
    let location = format!("s3://{}/renewed.log", bucket.name());
    let (access_key, secret_key) = (server.keys().0.to_owned(), server.keys().1.to_owned());
    // Each command's first fetch expires in 15 s, before a request's deadline (30 s), and its
    // secret is wrong: a request signed with it fails, so only a renewal before the first
    // request lets the command succeed. The renewal gets working keys good for years.
    // (Credentials good past the deadline are renewed in the background instead, which the
    // unit tests of `renew.rs` time.)
    let soon = (time::OffsetDateTime::now_utc() + Duration::from_secs(15))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (uri, fetches) = credentials_endpoint(move |n| match n % 2 {
        0 => container_credentials(&access_key, "not-the-secret", &soon),
        _ => container_credentials(&access_key, &secret_key, "2099-01-01T00:00:00Z"),
    });
    let home = tempfile::tempdir().unwrap();
    let container = || from_container(&server, home.path(), &uri);
    ok(container(), &["append", &location], b"renewed\n");
    let fetched: Vec<bool> = fetches.try_iter().collect();
    assert_eq!(fetched, [true, true], "the start's fetch, then the renewal");
    assert_eq!(ok(container(), &["cat", &location], b""), b"renewed\n");
    assert_eq!(fetches.try_iter().count(), 2);
}
