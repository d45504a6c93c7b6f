//! The cases, one module each, as `Bench` methods, and what they share: opening streams, the
//! read fixtures, and cleaning up.

mod append;
mod express;
mod flush;
mod follow;
mod read;
mod write;

use std::io::{self, Read, Write};

use s3::Bucket;
use s3_syncr::{Options, Storage};

/// Opens stream `name` with `seal_mib` MiB objects and the default read chunk.
pub fn open(bucket: &Bucket, name: &str, seal_mib: usize) -> Storage {
    let options = Options::builder()
        .with_seal_size(seal_mib << 20)
        .build()
        .expect("options");
    Storage::new(bucket.clone(), name, options).expect("open stream")
}

/// Opens stream `name` to read it, with the default options.
pub fn open_read(bucket: &Bucket, name: &str) -> Storage {
    Storage::new(bucket.clone(), name, Options::default()).expect("open stream")
}

pub fn fixture_name(seal_mib: usize) -> String {
    format!("r{seal_mib}-stream.bin")
}

/// Writes the read fixture: the whole data set in `seal_mib` MiB objects.
pub fn write_fixture(bucket: &Bucket, data: &[u8], seal_mib: usize) {
    let mut storage = open(bucket, &fixture_name(seal_mib), seal_mib);
    io::copy(&mut Source(data), &mut storage).expect("write fixture");
    storage.close().expect("close fixture");
}

/// Writes `records`, `record` bytes each, to `log`, flushing once every `every` bytes.
pub fn write_flushed(log: &mut impl Write, records: &[u8], record: usize, every: usize) {
    let mut next_flush = every;
    for (i, chunk) in records.chunks(record).enumerate() {
        log.write_all(chunk).expect("write");
        if (i + 1) * record >= next_flush {
            log.flush().expect("flush");
            next_flush += every;
        }
    }
}

/// Deletes every object under `prefix`; returns how many there were.
pub fn delete_prefix(bucket: &Bucket, prefix: &str) -> usize {
    let pages = bucket.list(prefix.to_owned(), None).expect("list");
    let mut deleted = 0;
    for object in pages.into_iter().flat_map(|page| page.contents) {
        bucket.delete_object(&object.key).expect("delete");
        deleted += 1;
    }
    deleted
}

/// A reader over memory that is not `BufRead`, like a file or a pipe: `io::copy` moves it
/// through its 8 KiB stack buffer, instead of one `write_all` of the whole slice.
pub struct Source<'a>(&'a [u8]);

impl Read for Source<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}
