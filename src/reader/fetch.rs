//! A fetch: one ranged GET with the checks a read makes on it.

use std::sync::atomic::AtomicBool;

use crate::Error;
use crate::index::Placed;
use crate::store::{Client, Crc, Running};

/// How a GET went.
pub(super) type Fetched = Result<Got, Error>;

/// What a GET brought besides its bytes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Got {
    /// The seal size its object records, if it records one.
    pub(super) seal: Option<u64>,
    /// When verifying: the checksum of its bytes.
    pub(super) read: Option<Crc>,
    /// The checksum the server stores for the object, if the answer (or, for the GET that
    /// ends an object read through, a HEAD) said.
    pub(super) stored: Option<Crc>,
}

/// One ranged GET with the checks a read makes on it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Get {
    pub(super) entry: Placed,
    /// Where in the object it starts.
    pub(super) offset: u64,
    pub(super) verify: bool,
    /// Whether the object's stored checksum is wanted: it is read through.
    pub(super) check: bool,
}

impl Get {
    /// Fills `out` from the object, checks the start it records, and when verifying,
    /// checksums the bytes and learns the object's stored checksum: from the answer, or, for
    /// the GET that ends an object read through, from a HEAD (an answer to a range need not
    /// carry it). A HEAD that fails leaves the object unchecked rather than the read failed.
    pub(super) fn run(
        self,
        client: &Client,
        out: &mut [u8],
        cancel: Option<&AtomicBool>,
    ) -> Fetched {
        let entry = self.entry;
        let mut running = self.verify.then(Running::new);
        let recorded = client.get_range(entry.seq, self.offset, out, cancel, running.as_mut())?;
        entry.verify(client, recorded.start)?;
        let mut got = Got {
            seal: recorded.seal,
            read: running.as_ref().map(Running::crc),
            stored: None,
        };
        if self.verify {
            let ends = self.offset + out.len() as u64 == entry.size;
            got.stored = (recorded.crc)
                .or_else(|| (self.check && ends).then(|| client.stat(entry.seq).ok()?.crc)?)
                .filter(|crc| crc.len == entry.size);
        }
        Ok(got)
    }
}

/// The first `len` bytes of `buf`, replaced by a new buffer of exactly `len` bytes if it is
/// shorter: a fresh zeroed allocation costs no pass over the memory (the pages come zeroed),
/// where growing the old one would copy and then zero it.
pub(super) fn room_for(buf: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if buf.len() < len {
        *buf = vec![0; len];
    }
    &mut buf[..len]
}
