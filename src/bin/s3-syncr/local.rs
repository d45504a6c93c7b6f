//! An S3 server embedded in the process: any [`s3s::S3`] implementation (`s3s-fs` over a
//! directory) served over real HTTP on loopback, checking SigV4 signatures, on a tokio runtime of
//! its own.
//!
//! One file for two users: the `s3-syncr` command serves `--local DIR` with it, and the test
//! server crate (`tests/server`) includes it with `#[path]` for the tests, doctests, examples and
//! benches.

use std::io;
use std::net::TcpListener;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::S3;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use s3s::validation::NameValidation;
use tokio::runtime::Runtime;

/// Serves `s3` on a free loopback port to clients that sign with `access_key` and `secret_key`,
/// for buckets whose names `bucket_names` accepts (`s3s::validation::AwsNameValidation` for
/// S3's rules).
///
/// Returns the endpoint, `http://127.0.0.1:<port>`, and the runtime that runs the server: it
/// serves until the runtime is dropped or shut down.
pub fn serve(
    s3: impl S3,
    access_key: &str,
    secret_key: &str,
    bucket_names: impl NameValidation,
) -> io::Result<(String, Runtime)> {
    let mut builder = S3ServiceBuilder::new(s3);
    builder.set_auth(SimpleAuth::from_single(access_key, secret_key));
    builder.set_validation(bucket_names);
    let service = builder.build();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let listener = {
        // `from_std` needs the runtime's reactor.
        let _entered = runtime.enter();
        tokio::net::TcpListener::from_std(listener)?
    };
    runtime.spawn(async move {
        let http = ConnBuilder::new(TokioExecutor::new());
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            // Without it, small responses wait for delayed ACKs (~44 ms a request).
            let _ = socket.set_nodelay(true);
            let conn = http
                .serve_connection(TokioIo::new(socket), service.clone())
                .into_owned();
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    });
    Ok((endpoint, runtime))
}
