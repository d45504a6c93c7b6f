//! The read-ahead queue: the GETs in flight ahead of a sequential reader, in stream order, and
//! the buffers they fill. Each GET is a [`Job`] on a thread of its own, as a writer's uploads
//! are, and rings the queue's [`Bell`] when it ends; a stepped bell (the simulator's) runs them
//! on the reader's thread instead. No more than `depth` fetches are outstanding (under way,
//! done but not taken, or dropped by a seek but not yet ended), and each holds one buffer from
//! a free list, so the queue never holds more than `depth` buffers.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::fetch::{Fetched, Get, room_for};
use crate::Error;
use crate::index::Placed;
use crate::job::{self, Bell, Job};
use crate::store::Client;

/// What a fetch's thread hands back: its buffer, whatever became of the GET.
type Filled = (Vec<u8>, Fetched);

/// One ranged GET ahead of the reader.
pub(super) struct Fetch {
    /// The object it reads from.
    pub(super) seq: u64,
    pub(super) start: u64,
    pub(super) len: usize,
    /// Set when the bytes are no longer wanted: the GET stops reading the response.
    cancel: Arc<AtomicBool>,
    /// Under way, until it is taken in.
    job: Option<Job<Filled>>,
    pub(super) done: Option<Filled>,
}

pub(super) struct Ahead {
    /// Under way or done, contiguous, in stream order.
    fetches: VecDeque<Fetch>,
    /// Fetches dropped by a seek, still under way: their buffers come back when they end.
    abandoned: Vec<Job<Filled>>,
    /// Buffers no fetch holds, reused so that reading allocates (and faults in) no new memory.
    free: Vec<Vec<u8>>,
    /// Rung by every fetch that ends.
    bell: Arc<Bell>,
    /// Most fetches outstanding at once.
    depth: usize,
}

impl Ahead {
    /// `stepped`: the seed of a stepped bell ([`Bell::stepped`]).
    pub(super) fn new(depth: usize, stepped: Option<u64>) -> Ahead {
        Ahead {
            fetches: VecDeque::new(),
            abandoned: Vec::new(),
            free: Vec::new(),
            bell: Arc::new(stepped.map_or_else(Bell::default, Bell::stepped)),
            depth,
        }
    }

    pub(super) fn depth(&self) -> usize {
        self.depth
    }

    /// How many more fetches may start.
    pub(super) fn slots(&self) -> usize {
        (self.depth).saturating_sub(self.fetches.len() + self.abandoned.len())
    }

    /// Where the last fetch ends, if there is one.
    pub(super) fn end(&self) -> Option<u64> {
        self.fetches.back().map(|f| f.start + f.len as u64)
    }

    /// Whether a fetch reads `entry` from its first byte: the object is read through.
    pub(super) fn reads_through(&self, entry: Placed) -> bool {
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

    /// Starts `get` of `len` bytes, at stream offset `at`, after the last fetch.
    pub(super) fn start(&mut self, client: &Arc<Client>, get: Get, at: u64, len: usize) {
        let cancel = Arc::new(AtomicBool::new(false));
        let mut buf = self.free.pop().unwrap_or_default();
        let cancelled = cancel.clone();
        let job = job::spawn_as("s3-syncr-read", client, &self.bell, move |client| {
            let result = get.run(client, room_for(&mut buf, len), Some(&*cancelled));
            Ok((buf, result))
        });
        self.fetches.push_back(Fetch {
            seq: get.entry.seq,
            start: at,
            len,
            cancel,
            job: Some(job),
            done: None,
        });
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

    /// Waits until fetch `i` is done; false if there is no such fetch.
    pub(super) fn wait_for(&mut self, i: usize) -> bool {
        loop {
            let seen = self.bell.seen();
            self.collect();
            match self.fetches.get(i) {
                None => return false,
                Some(fetch) if fetch.done.is_some() => return true,
                Some(_) => self.bell.wait_past(seen),
            }
        }
    }

    /// Takes in the fetches that ended, without waiting, and the buffers of those a seek
    /// dropped.
    pub(super) fn collect(&mut self) {
        for fetch in &mut self.fetches {
            if let Some(job) = fetch.job.take_if(|job| job.is_finished()) {
                fetch.done = Some(filled(job));
            }
        }
        let (ended, running) = std::mem::take(&mut self.abandoned)
            .into_iter()
            .partition(Job::is_finished);
        self.abandoned = running;
        for job in ended {
            self.recycle(filled(job).0);
        }
    }

    /// Drops every fetch: finished ones give their buffer back now, the others once they end
    /// (a cancelled GET ends soon).
    pub(super) fn cancel(&mut self) {
        for fetch in std::mem::take(&mut self.fetches) {
            match (fetch.done, fetch.job) {
                (Some((buf, _)), _) => self.recycle(buf),
                (None, Some(job)) => {
                    fetch.cancel.store(true, Ordering::Relaxed);
                    self.abandoned.push(job);
                }
                (None, None) => {}
            }
        }
    }

    /// Drops every fetch and buffer, without waiting for the GETs under way.
    pub(super) fn release(&mut self) {
        self.cancel();
        self.abandoned.clear();
        self.free = Vec::new();
    }

    pub(super) fn recycle(&mut self, buf: Vec<u8>) {
        self.free.push(buf);
    }
}

/// The outcome of a fetch's job, which ended. A job that failed as a whole (its thread
/// panicked, or could not start) lost its buffer: the fetch fails with that error.
fn filled(job: Job<Filled>) -> Filled {
    job.join()
        .unwrap_or_else(|err: Error| (Vec::new(), Err(err)))
}

impl Drop for Ahead {
    /// Cuts the GETs under way short, so their threads end soon after the reader.
    fn drop(&mut self) {
        self.cancel();
    }
}
