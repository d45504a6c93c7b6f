//! The read-ahead queue: the GETs in flight ahead of a sequential reader, in stream order, the
//! buffers they fill, and the workers that run them. No more than `depth` fetches are
//! outstanding (under way, done but not taken, or dropped by a seek but not yet back), and
//! each holds one buffer from a free list, so the queue never holds more than `depth` buffers.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::fetch::{Done, Fetched, Get, Order, Workers};
use crate::index::Entry;
use crate::store::Client;

/// One ranged GET ahead of the reader.
pub(super) struct Fetch {
    id: u64,
    /// The object it reads from.
    pub(super) seq: u64,
    pub(super) start: u64,
    pub(super) len: usize,
    /// Set when the bytes are no longer wanted: the worker stops reading the response.
    cancel: Arc<AtomicBool>,
    pub(super) done: Option<(Vec<u8>, Fetched)>,
}

pub(super) struct Ahead {
    /// Under way or done, contiguous, in stream order.
    fetches: VecDeque<Fetch>,
    /// Fetches dropped by a seek whose worker has not handed their buffer back yet.
    abandoned: usize,
    /// Buffers no fetch holds, reused so that reading allocates (and faults in) no new memory.
    free: Vec<Vec<u8>>,
    /// Started with the first fetch; `None` before, or if no thread could be started.
    workers: Option<Workers>,
    /// The seed of stepped [`Workers`].
    stepped: Option<u64>,
    next_id: u64,
    /// Most fetches outstanding at once; 0 once the workers are gone.
    depth: usize,
}

impl Ahead {
    pub(super) fn new(depth: usize, stepped: Option<u64>) -> Ahead {
        Ahead {
            fetches: VecDeque::new(),
            abandoned: 0,
            free: Vec::new(),
            workers: None,
            stepped,
            next_id: 0,
            depth,
        }
    }

    pub(super) fn depth(&self) -> usize {
        self.depth
    }

    /// How many more fetches may start.
    pub(super) fn slots(&self) -> usize {
        self.depth
            .saturating_sub(self.fetches.len() + self.abandoned)
    }

    /// Where the last fetch ends, if there is one.
    pub(super) fn end(&self) -> Option<u64> {
        self.fetches.back().map(|f| f.start + f.len as u64)
    }

    /// Whether a fetch reads `entry` from its first byte: the object is read through.
    pub(super) fn reads_through(&self, entry: Entry) -> bool {
        (self.fetches.iter()).any(|f| f.seq == entry.seq && f.start == entry.start)
    }

    pub(super) fn get(&self, i: usize) -> Option<&Fetch> {
        self.fetches.get(i)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Fetch> {
        self.fetches.iter()
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Fetch> {
        self.fetches.iter_mut()
    }

    /// Starts `get` of `len` bytes, at stream offset `at`, after the last fetch; false if no
    /// worker can run it (none could be started, or all are gone): from then on the reader
    /// fetches in its own thread.
    pub(super) fn start(&mut self, client: &Arc<Client>, get: Get, at: u64, len: usize) -> bool {
        if self.workers.is_none() {
            self.workers = Workers::start(client, self.depth, self.stepped);
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let order = Order {
            id: self.next_id,
            get,
            len,
            buf: self.free.pop().unwrap_or_default(),
            cancel: cancel.clone(),
        };
        if !self.workers.as_mut().is_some_and(|w| w.send(order)) {
            self.workers = None;
            self.depth = 0;
            return false;
        }
        self.fetches.push_back(Fetch {
            id: self.next_id,
            seq: get.entry.seq,
            start: at,
            len,
            cancel,
            done: None,
        });
        self.next_id += 1;
        true
    }

    /// Waits for the first fetch, if there is one, and takes it out of the queue: its buffer,
    /// how many bytes of it it fetched, and how that went.
    pub(super) fn take_front(&mut self) -> Option<(Vec<u8>, usize, Fetched)> {
        if !self.wait_for(0) {
            return None;
        }
        let front = self.fetches.pop_front()?;
        let (buf, result) = front.done?;
        Some((buf, front.len, result))
    }

    /// Waits until fetch `i` is done; false if there is no such fetch, or the workers are gone
    /// (they only stop when a thread panics: what they held is forgotten, and reads fetch in
    /// the caller).
    pub(super) fn wait_for(&mut self, i: usize) -> bool {
        loop {
            match self.fetches.get(i) {
                None => return false,
                Some(fetch) if fetch.done.is_some() => return true,
                Some(_) => {}
            }
            match self.workers.as_mut().and_then(Workers::recv) {
                Some(done) => self.file(done),
                None => {
                    self.workers = None;
                    self.depth = 0;
                    self.fetches.clear();
                    self.abandoned = 0;
                    return false;
                }
            }
        }
    }

    /// Takes in the fetches that finished, without waiting.
    pub(super) fn collect(&mut self) {
        while let Some(done) = self.workers.as_mut().and_then(Workers::try_recv) {
            self.file(done);
        }
    }

    /// Files a finished fetch with its place in the queue, or frees its buffer if a seek
    /// dropped it.
    fn file(&mut self, done: Done) {
        match self.fetches.iter_mut().find(|f| f.id == done.id) {
            Some(fetch) => fetch.done = Some((done.buf, done.result)),
            None => {
                self.abandoned -= 1;
                self.recycle(done.buf);
            }
        }
    }

    /// Drops every fetch: finished ones give their buffer back now, the others once their
    /// worker notices the cancellation.
    pub(super) fn cancel(&mut self) {
        for fetch in std::mem::take(&mut self.fetches) {
            match fetch.done {
                Some((buf, _)) => self.recycle(buf),
                None => {
                    fetch.cancel.store(true, Ordering::Relaxed);
                    self.abandoned += 1;
                }
            }
        }
    }

    /// Drops every fetch and buffer, and stops the workers (without waiting for them).
    pub(super) fn release(&mut self) {
        self.cancel();
        self.workers = None;
        self.abandoned = 0;
        self.free = Vec::new();
    }

    pub(super) fn recycle(&mut self, buf: Vec<u8>) {
        self.free.push(buf);
    }
}

impl Drop for Ahead {
    /// Cuts the GETs under way short, so their threads end soon after the reader.
    fn drop(&mut self) {
        self.cancel();
    }
}
