//! A fetch: one ranged GET with the checks a read makes on it, and the workers that run the
//! GETs ahead of a sequential reader.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use crate::Error;
use crate::draw::Rng;
use crate::index::Entry;
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

/// A GET ahead, as a worker takes it: an order for one fetch.
pub(super) struct Order {
    pub(super) id: u64,
    pub(super) get: Get,
    pub(super) len: usize,
    pub(super) buf: Vec<u8>,
    pub(super) cancel: Arc<AtomicBool>,
}

/// A GET ahead, done: its bytes and how it went.
pub(super) struct Done {
    pub(super) id: u64,
    pub(super) buf: Vec<u8>,
    pub(super) result: Fetched,
}

/// Threads that run ranged GETs. They stop once the reader drops its end of the channels, after
/// the request they are in (which a cancelled fetch cuts short). A stepped reader (the
/// simulator's) runs its GETs on its own thread instead, one at a time, in an order drawn
/// from its seed, as `job::Bell::stepped` runs a writer's jobs.
pub(super) enum Workers {
    Threads {
        orders: Sender<Order>,
        done: Receiver<Done>,
    },
    Stepped {
        client: Arc<Client>,
        queued: Vec<Order>,
        rng: Rng,
    },
}

impl Workers {
    pub(super) fn start(
        client: &Arc<Client>,
        count: usize,
        stepped: Option<u64>,
    ) -> Option<Workers> {
        if let Some(seed) = stepped {
            return Some(Workers::Stepped {
                client: client.clone(),
                queued: Vec::new(),
                rng: Rng::new(seed),
            });
        }
        let (orders, queue) = mpsc::channel::<Order>();
        let (report, done) = mpsc::channel();
        let queue = Arc::new(Mutex::new(queue));
        let mut started = 0;
        for _ in 0..count {
            let (client, queue, report) = (client.clone(), queue.clone(), report.clone());
            let spawned = std::thread::Builder::new()
                .name("s3-syncr-read".into())
                .spawn(move || {
                    // The lock is held while waiting, so idle workers queue on it, not on orders.
                    while let Ok(Ok(order)) = queue.lock().map(|q| q.recv()) {
                        if report.send(fetch(&*client, order)).is_err() {
                            break;
                        }
                    }
                });
            started += usize::from(spawned.is_ok());
        }
        // Without threads, every chunk is fetched in the caller, as with `read_ahead: 0`.
        (started > 0).then_some(Workers::Threads { orders, done })
    }

    /// Hands `order` to a worker; false if every worker is gone.
    pub(super) fn send(&mut self, order: Order) -> bool {
        match self {
            Workers::Threads { orders, .. } => orders.send(order).is_ok(),
            Workers::Stepped { queued, .. } => {
                queued.push(order);
                true
            }
        }
    }

    /// The next fetch done, waiting for it; `None` if every worker is gone (or, stepped,
    /// none is queued).
    pub(super) fn recv(&mut self) -> Option<Done> {
        match self {
            Workers::Threads { done, .. } => done.recv().ok(),
            Workers::Stepped { .. } => self.step(100),
        }
    }

    /// A fetch done, if one is, without waiting. Stepped, one is run with even chance, as a
    /// thread might have finished one before the reader looked.
    pub(super) fn try_recv(&mut self) -> Option<Done> {
        match self {
            Workers::Threads { done, .. } => done.try_recv().ok(),
            Workers::Stepped { .. } => self.step(50),
        }
    }

    /// Runs a queued fetch drawn at random, with `percent` chance.
    fn step(&mut self, percent: u64) -> Option<Done> {
        let Workers::Stepped {
            client,
            queued,
            rng,
        } = self
        else {
            return None;
        };
        if queued.is_empty() || !rng.chance(percent) {
            return None;
        }
        let order = queued.swap_remove(rng.below(queued.len() as u64) as usize);
        Some(fetch(&**client, order))
    }
}

/// Runs `order`. A panic still reports back: the reader waits for every fetch.
fn fetch(client: &Client, mut order: Order) -> Done {
    let out = room_for(&mut order.buf, order.len);
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        order.get.run(client, out, Some(&*order.cancel))
    }))
    .unwrap_or_else(|_| Err(Error::internal("a read worker panicked")));
    Done {
        id: order.id,
        buf: order.buf,
        result,
    }
}

/// One ranged GET with the checks a read makes on it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Get {
    pub(super) entry: Entry,
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
