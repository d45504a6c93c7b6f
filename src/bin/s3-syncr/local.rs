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
use s3s::auth::S3Auth;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::validation::NameValidation;
use tokio::runtime::Runtime;

/// Serves `s3` on a free loopback port to clients that sign with keys `auth` knows (for one
/// pair: `s3s::auth::SimpleAuth::from_single`), for buckets whose names `bucket_names` accepts (`s3s::validation::AwsNameValidation` for
/// S3's rules).
///
/// Returns the endpoint, `http://127.0.0.1:<port>`, and the runtime that runs the server: it
/// serves until the runtime is dropped or shut down.
pub fn serve(
    s3: impl S3,
    auth: impl S3Auth,
    bucket_names: impl NameValidation,
) -> io::Result<(String, Runtime)> {
    let server = listen(s3, auth, bucket_names, "http")?;
    let (service, listener) = (server.service, server.listener);
    server.runtime.spawn(async move {
        let http = ConnBuilder::new(TokioExecutor::new());
        loop {
            let socket = accept(&listener).await;
            let conn = http
                .serve_connection(TokioIo::new(socket), service.clone())
                .into_owned();
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    });
    Ok((server.endpoint, server.runtime))
}

/// What a server starts from: the S3 service checking signatures, a runtime of its own, and a
/// listener on a free loopback port, whose endpoint is `<scheme>://127.0.0.1:<port>`.
pub(crate) struct Listening {
    pub(crate) service: S3Service,
    pub(crate) runtime: Runtime,
    pub(crate) listener: tokio::net::TcpListener,
    pub(crate) endpoint: String,
}

/// See [`serve`] for the arguments.
pub(crate) fn listen(
    s3: impl S3,
    auth: impl S3Auth,
    bucket_names: impl NameValidation,
    scheme: &str,
) -> io::Result<Listening> {
    let mut builder = S3ServiceBuilder::new(s3);
    builder.set_auth(auth);
    builder.set_validation(bucket_names);
    let service = builder.build();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let endpoint = format!("{scheme}://{}", listener.local_addr()?);
    let listener = {
        // `from_std` needs the runtime's reactor.
        let _entered = runtime.enter();
        tokio::net::TcpListener::from_std(listener)?
    };
    Ok(Listening {
        service,
        runtime,
        listener,
        endpoint,
    })
}

/// The next connection: a failed accept (a client that gave up) is no reason to stop serving.
pub(crate) async fn accept(listener: &tokio::net::TcpListener) -> tokio::net::TcpStream {
    loop {
        if let Ok((socket, _)) = listener.accept().await {
            // Without it, small responses wait for delayed ACKs (~44 ms a request).
            let _ = socket.set_nodelay(true);
            return socket;
        }
    }
}
