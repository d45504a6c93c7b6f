//! The read side: the read position, the chunk fetched last, and the next chunk fetched ahead
//! in the background while the caller consumes the current one.

use std::sync::Arc;
use std::thread::JoinHandle;

use crate::Error;
use crate::client::Client;
use crate::index::{Entry, Index};
use crate::writer::Writer;

/// First ranged GET after a seek: no larger than a small read, so random reads cost what a raw
/// ranged GET does; it doubles on sequential reads up to the read chunk size, or starts larger
/// for a larger read.
const FIRST_READ: usize = 4 * 1024;

pub(crate) struct Reader {
    pub(crate) pos: u64,
    /// Stream offset of `chunk[0]`.
    chunk_start: u64,
    chunk: Vec<u8>,
    /// Size of the next ranged GET.
    window: usize,
    max_window: usize,
    /// The chunk after `chunk`, on its way.
    ahead: Option<Ahead>,
    /// A second buffer, so that fetching ahead allocates nothing: memory stays at two chunks.
    spare: Vec<u8>,
}

struct Ahead {
    start: u64,
    job: JoinHandle<(Vec<u8>, Result<(), Error>)>,
}

impl Reader {
    pub(crate) fn new(max_window: usize) -> Reader {
        Reader {
            pos: 0,
            chunk_start: 0,
            chunk: Vec::new(),
            window: FIRST_READ.min(max_window),
            max_window,
            ahead: None,
            spare: Vec::new(),
        }
    }

    fn chunk_holds(&self, pos: u64) -> bool {
        pos >= self.chunk_start && pos - self.chunk_start < self.chunk.len() as u64
    }

    /// Moves the read position. Leaving the chunk means random access: the next GET is small.
    pub(crate) fn seek(&mut self, pos: u64) {
        if !self.chunk_holds(pos) {
            self.window = FIRST_READ.min(self.max_window);
        }
        self.pos = pos;
    }

    /// Frees both buffers, after waiting for a fetch under way.
    pub(crate) fn release(&mut self) {
        if let Some(ahead) = self.ahead.take() {
            let _ = ahead.job.join();
        }
        self.chunk = Vec::new();
        self.spare = Vec::new();
    }

    /// The bytes at the read position: from the chunk fetched last, else from the writer's
    /// objects not yet in S3, else from a new ranged GET. At the end of what is known, and with
    /// no writer to say where the end is, it lists the objects again, so bytes appended since by
    /// any handle are found. A GET fetches at least `wanted` bytes (up to the chunk size) when
    /// the object has them.
    pub(crate) fn fill_buf<'a>(
        &'a mut self,
        client: &Arc<Client>,
        index: &mut Index,
        writer: &'a Writer,
        wanted: usize,
    ) -> Result<&'a [u8], Error> {
        let pos = self.pos;
        if !self.chunk_holds(pos) {
            if pos >= index.end() && !writer.started() {
                index.refresh(client)?;
            }
            let local_start = index.end();
            if pos >= local_start {
                let mut offset = (pos - local_start) as usize;
                for part in writer.local() {
                    if offset < part.len() {
                        return Ok(&part[offset..]);
                    }
                    offset -= part.len();
                }
                return Ok(&[]);
            }
            let Some(entry) = index.find(pos) else {
                return Ok(&[]);
            };
            self.window = self.window.max(wanted.min(self.max_window));
            self.fetch(client, entry, pos)?;
            self.fetch_ahead(client, index);
        }
        Ok(&self.chunk[(pos - self.chunk_start) as usize..])
    }

    /// Makes `chunk` start at `pos`, taking the chunk fetched ahead if it is that one.
    fn fetch(&mut self, client: &Client, entry: Entry, pos: u64) -> Result<(), Error> {
        if let Some(ahead) = self.ahead.take() {
            let (buf, result) = ahead.job.join().unwrap_or_else(|_| (Vec::new(), Ok(())));
            if ahead.start == pos && result.is_ok() && !buf.is_empty() {
                self.spare = std::mem::replace(&mut self.chunk, buf);
                self.chunk_start = pos;
                self.window = (self.window * 2).min(self.max_window);
                return Ok(());
            }
            // A seek made it useless, or it failed: fetch again here, with retries reported.
            self.spare = buf;
        }
        let offset = pos - entry.start;
        let len = (entry.size - offset).min(self.window as u64);
        self.chunk.clear();
        self.chunk_start = pos;
        // offsets: check the start the object records against where the index puts it.
        let fetched = client
            .get_range(entry.seq, offset, len, &mut self.chunk)
            .and_then(|recorded| entry.verify(client, recorded));
        if let Err(err) = fetched {
            self.chunk.clear();
            return Err(err);
        }
        self.window = (self.window * 2).min(self.max_window);
        Ok(())
    }

    /// Starts fetching the chunk after the current one, once reading is sequential (the window
    /// grew past its first size) and the next bytes are in a known object.
    fn fetch_ahead(&mut self, client: &Arc<Client>, index: &Index) {
        let next = self.chunk_start + self.chunk.len() as u64;
        let sequential = self.window > FIRST_READ.min(self.max_window) * 2;
        let Some(entry) = index.find(next).filter(|_| sequential) else {
            return;
        };
        let offset = next - entry.start;
        let len = (entry.size - offset).min(self.window as u64);
        let mut buf = std::mem::take(&mut self.spare);
        buf.clear();
        let client = client.clone();
        let spawned = std::thread::Builder::new()
            .name("s3-syncr-read-ahead".into())
            .spawn(move || {
                // offsets: as in `fetch`, the recorded start is checked.
                let result = client
                    .get_range(entry.seq, offset, len, &mut buf)
                    .and_then(|recorded| entry.verify(&client, recorded));
                (buf, result)
            });
        // Without a thread, the next chunk is simply fetched when it is needed.
        if let Ok(job) = spawned {
            self.ahead = Some(Ahead { start: next, job });
        }
    }
}
