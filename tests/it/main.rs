//! The integration tests, linked as one binary: each module is one topic, against a real S3
//! server with signed requests (the in-process one of `tests/server`, or the external one
//! `S3SYNCR_TEST_ENDPOINT` names), with faults injected between client and server by its proxy.
//! Run one topic with a filter: `cargo test --features cli --test it -- faults::`.

mod common;

mod append;
#[cfg(feature = "cli")]
mod cli;
mod contention;
mod express;
mod faults;
mod follow;
mod integrity;
mod long;
mod memory;
mod model;
mod offsets;
mod original;
mod read_ahead;
mod stream;
mod vanished;
mod wire;
