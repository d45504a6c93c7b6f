//! Where the objects of a listing start: the objects after missing sequence numbers record
//! their own start (one HEAD each), and numbers a trim took meanwhile are told apart from
//! gaps.

use crate::Error;
use crate::layout::Object;
use crate::store::Client;

/// `listed` without the objects before missing sequence numbers in it, once a HEAD shows
/// that the object just before them is gone too: a trim deleted them between two pages of the
/// listing (or between two listings). Numbers missing after an object that is still there are
/// a gap in the stream,
/// and the object after it gets the start it records (one HEAD), for the index to place it
/// there; one that records none (of s3-syncr 0.1.0 or another tool) cannot be placed:
/// [`Error::MissingObject`] naming the first missing key.
pub(super) fn located(client: &Client, mut listed: Vec<Object>) -> Result<Vec<Object>, Error> {
    let mut from = 0;
    while let Some(i) = next_gap(client, &mut listed, from)? {
        match present_start(client, listed[i + 1].seq)? {
            Some(Some(start)) => listed[i + 1].start = start,
            Some(None) => {
                return Err(Error::MissingObject {
                    key: client.key(listed[i].seq + 1),
                });
            }
            // Deleted since it was listed: more numbers are missing, and are looked at again.
            None => {
                listed.remove(i + 1);
                from = i;
                continue;
            }
        }
        from = i + 1;
    }
    Ok(listed)
}

/// `listed` as [`located`] takes it (no start looked up): numbers a trim took dropped, the
/// gaps left in it.
pub(crate) fn with_gaps(client: &Client, mut listed: Vec<Object>) -> Result<Vec<Object>, Error> {
    let mut from = 0;
    while let Some(i) = next_gap(client, &mut listed, from)? {
        from = i + 1;
    }
    Ok(listed)
}

/// The index in `listed` of the object just before its first gap at or after index `from`:
/// missing numbers whose older side is still there, once the objects deleted since the
/// listing that a HEAD met on the older side of missing numbers were dropped from `listed`.
///
/// Such an object went with every object before it if a trim took it (trims delete oldest
/// first), or alone if a lifecycle rule did (expiries come in any order): the first object
/// listed tells which (one HEAD more). Taking an expiry for a trim would drop objects still
/// there, and the stream would seem to start after them (a false [`Error::Trimmed`]).
fn next_gap(
    client: &Client,
    listed: &mut Vec<Object>,
    mut from: usize,
) -> Result<Option<usize>, Error> {
    while let Some(i) = (listed.get(from..).unwrap_or_default().windows(2))
        .position(|w| w[1].seq != w[0].seq + 1)
        .map(|i| i + from)
    {
        if present_start(client, listed[i].seq)?.is_some() {
            return Ok(Some(i));
        }
        if i == 0 || present_start(client, listed[0].seq)?.is_none() {
            listed.drain(..=i);
            from = 0;
        } else {
            // The missing numbers reach the object before it, which is looked at in turn.
            listed.remove(i);
            from = i - 1;
        }
    }
    Ok(None)
}

/// The start object `seq` records (`Some(None)`: it records none), or `None` if it is gone.
fn present_start(client: &Client, seq: u64) -> Result<Option<Option<u64>>, Error> {
    match client.recorded_start(seq) {
        Ok(start) => Ok(Some(start)),
        Err(err) if err.is_missing() => Ok(None),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::sync::Arc;

    use crate::client::mem::{self, Fault, MemS3};
    use crate::{Error, Options, Storage};

    const NAME: &str = "x/log.bin";

    /// A handle on the stream in `mem`, sealing objects at 100 bytes.
    fn handle(mem: &Arc<MemS3>) -> Storage {
        let options = Options {
            seal_size: 100,
            ..Options::default()
        };
        mem::storage(mem, NAME, options)
    }

    #[test]
    fn an_expiry_racing_a_listing_leaves_the_older_objects_in_the_stream() {
        let mem = mem::small_parts();
        let mut writer = handle(&mem);
        let data: Vec<u8> = (0..600).map(|i| (i % 251) as u8).collect();
        for object in data.chunks(100) {
            writer.write_all(object).unwrap();
        }
        writer.close().unwrap();
        let key = |seq: u64| format!("x/log-{seq:020}.bin");
        mem.remove(&key(3));
        // Without the hint the reader lists the stream whole: one listing meets the gap.
        mem.remove("x/log-s3syncr-hint.bin");
        // Object 2, before the gap, expires between the listing and its HEAD: 0 and 1 stay.
        let expired = key(2);
        let mut once = true;
        mem.set_faults(Some(Box::new(move |call| match call.op {
            "HEAD" if call.key == expired && std::mem::take(&mut once) => Fault::DeleteFirst,
            _ => Fault::None,
        })));
        let mut reader = handle(&mem);
        assert_eq!(reader.first_offset().unwrap(), 0);
        let mut first = vec![0; 200];
        reader.read_exact(&mut first).unwrap();
        assert_eq!(first, data[..200]);
        let err = reader.read(&mut [0; 10]).unwrap_err();
        let inner = err.get_ref().and_then(|e| e.downcast_ref::<Error>());
        assert!(
            matches!(inner, Some(Error::MissingObject { key: k }) if *k == key(2)),
            "{err}"
        );
        reader.seek(SeekFrom::Start(400)).unwrap();
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, data[400..]);
    }
}
