//! A writer whose view of the end is old, against the in-memory S3.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::client::mem::{self, Fault, MemS3};
use crate::{Error, Options, Storage};

/// A handle sealing objects at 100 bytes that takes what it knows of the end as old at
/// once.
fn handle(mem: &Arc<MemS3>) -> Storage {
    let options = Options {
        seal_size: 100,
        fresh_end: Duration::ZERO,
        ..Options::default()
    };
    mem::storage(mem, "s/log.bin", options)
}

#[test]
fn a_writer_others_went_past_never_fills_the_key_a_deletion_emptied() {
    let mem = mem::small_parts();
    let mut first = handle(&mem);
    first.write_all(&[b'a'; 100]).unwrap();
    first.close().unwrap();
    // Finds object 0 full: its bytes are to start object 1.
    let mut stale = handle(&mem);
    stale.write_all(b"late").unwrap();
    let mut other = handle(&mem);
    other.write_all(&[b'b'; 100]).unwrap();
    other.write_all(b"c").unwrap();
    other.close().unwrap();
    // Object 1 expires while object 2 follows it.
    let key = |seq: u64| format!("s/log-{seq:020}.bin");
    mem.remove(&key(1));

    let writes = Arc::new(Mutex::new(Vec::new()));
    let seen = writes.clone();
    mem.set_faults(Some(Box::new(move |call| {
        if matches!(call.op, "PUT" | "COMPLETE-UPLOAD") {
            seen.lock().unwrap().push(call.key.to_owned());
        }
        Fault::None
    })));
    let err = stale.flush().unwrap_err();
    let inner = err.get_ref().and_then(|e| e.downcast_ref::<Error>());
    assert!(matches!(inner, Some(Error::Fenced { .. })), "{err}");
    assert_eq!(stale.unflushed(), b"late");
    // Not even for a moment: a handle listing then would take it in.
    assert_eq!(*writes.lock().unwrap(), Vec::<String>::new());
    assert!(!mem.objects().contains_key(&key(1)));
}
