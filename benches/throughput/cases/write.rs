//! Case 1: the whole data set written in one go, into `Storage` or as single PUTs.

use std::io::{self, Write};

use s3::Bucket;

use crate::cases::{Source, delete_prefix, open};
use crate::report::Metric;
use crate::system::measure;
use crate::{Bench, MIB};

impl Bench<'_> {
    /// Case 1: `io::copy` into `Storage` (or one `write_all` of the whole data set) then
    /// `close`, against `put_object` of each object.
    pub fn write(&mut self, bucket: &Bucket, seal_mib: usize, one_write: bool) {
        let data = self.data;
        let seal = seal_mib * MIB;
        let objects = data.len().div_ceil(seal);
        let how = if one_write {
            "one write_all"
        } else {
            "io::copy"
        };
        let case = if seal_mib == 256 {
            format!("1/5. write, {how}, seal 256 MiB")
        } else {
            format!("1. write, {how}, seal {seal_mib} MiB")
        };
        self.case(
            &case,
            Metric::Throughput(data.len() as u64),
            |run| {
                let prefix = format!("raw{seal_mib}-{run}/");
                let sample = measure(|| {
                    for (seq, part) in data.chunks(seal).enumerate() {
                        bucket
                            .put_object(format!("{prefix}seg-{seq:020}.bin"), part)
                            .expect("raw put");
                    }
                });
                assert_eq!(delete_prefix(bucket, &prefix), objects);
                sample
            },
            |run| {
                let prefix = format!("st{seal_mib}-{one_write}-{run}/");
                let sample = measure(|| {
                    let mut storage = open(bucket, &format!("{prefix}seg.bin"), seal_mib);
                    if one_write {
                        storage.write_all(data).expect("write");
                    } else {
                        let copied = io::copy(&mut Source(data), &mut storage).expect("copy");
                        assert_eq!(copied, data.len() as u64);
                    }
                    storage.close().expect("close");
                });
                assert_eq!(delete_prefix(bucket, &prefix), objects);
                sample
            },
        );
    }
}
