//! Writes `ca.pem`, `cert.pem` and `key.pem` into a directory: a new CA and a server
//! certificate it issued for the names given (default `127.0.0.1` and `localhost`).
//!
//! ```sh
//! cargo run -p s3-syncr-test-server --bin s3syncr-test-certs -- DIR [NAME...]
//! ```
//!
//! CI starts SeaweedFS over HTTPS with these; the machine it runs on may not have the `openssl`
//! command, and this crate builds for the tests anyway.

use std::path::PathBuf;

use s3_syncr_test_server::TestCa;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: s3syncr-test-certs DIR [NAME...]");
        std::process::exit(2);
    };
    let names: Vec<String> = args.collect();
    let names: Vec<&str> = if names.is_empty() {
        vec!["127.0.0.1", "localhost"]
    } else {
        names.iter().map(String::as_str).collect()
    };
    let ca = TestCa::new("s3-syncr CI CA");
    let cert = ca.server_cert(&names);
    let write = |name: &str, contents: &str| {
        let path = dir.join(name);
        std::fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    };
    write("ca.pem", ca.pem());
    write("cert.pem", &cert.cert_pem);
    write("key.pem", &cert.key_pem);
    eprintln!(
        "s3syncr-test-certs: {} holds ca.pem, and cert.pem with key.pem for {}",
        dir.display(),
        names.join(", ")
    );
}
