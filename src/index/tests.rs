//! The index's arithmetic, on listings made up here.

use super::*;

fn seg(seq: u64, size: u64) -> Object {
    Object {
        key: format!("k{seq}"),
        seq,
        start: 0,
        size,
        last_modified: String::new(),
    }
}

#[test]
fn offsets_and_lookup() {
    let mut index = Index::default();
    index
        .update(vec![seg(3, 10), seg(4, 0), seg(5, 5)], |s| format!("k{s}"))
        .unwrap();
    assert_eq!(index.end(), 15);
    assert_eq!(index.find(0).unwrap().seq, 3);
    assert_eq!(index.find(9).unwrap().seq, 3);
    assert_eq!(index.find(10).unwrap().seq, 5);
    assert_eq!(index.find(15), None);
}

#[test]
fn last_object_may_grow_but_not_shrink_or_vanish() {
    let mut index = Index::default();
    index
        .update(vec![seg(0, 4), seg(1, 2)], |s| format!("k{s}"))
        .unwrap();
    index
        .update(vec![seg(1, 6), seg(2, 1)], |s| format!("k{s}"))
        .unwrap();
    assert_eq!(index.end(), 11);
    let shrunk = index.update(vec![seg(2, 0)], |s| format!("k{s}"));
    assert!(matches!(shrunk, Err(Error::ObjectChanged { .. })));
    let vanished = index.update(vec![seg(3, 1)], |s| format!("k{s}"));
    assert!(matches!(vanished, Err(Error::MissingObject { key }) if key == "k2"));
    assert_eq!(index.end(), 11, "a failed update keeps what was known");
}

/// Object `seq` after a gap, as [`located`] returns it: with the start it records.
fn after_gap(seq: u64, start: u64, size: u64) -> Object {
    Object {
        start,
        ..seg(seq, size)
    }
}

#[test]
fn an_object_after_a_gap_starts_where_it_records_and_the_gap_names_its_first_key() {
    let mut index = Index::default();
    index
        .update(
            vec![seg(0, 4), seg(1, 2), after_gap(4, 20, 5), seg(5, 1)],
            |s| format!("k{s}"),
        )
        .unwrap();
    assert_eq!((index.first(), index.end()), (0, 26));
    assert_eq!(index.find(5).unwrap().seq, 1);
    assert_eq!((index.find(6), index.missing_at(6)), (None, Some(2)));
    assert_eq!(index.missing_at(19), Some(2));
    assert_eq!(index.find(20).unwrap().seq, 4);
    assert_eq!(index.find(25).unwrap().seq, 5);
    assert_eq!((index.missing_at(5), index.missing_at(20)), (None, None));
    assert_eq!(index.missing_at(26), None, "the end is no gap");
    assert_eq!(index.first_gap(), Some(2));
    index.pop_first();
    index.pop_first();
    assert_eq!(index.first(), 20, "the stream starts after the gap");
    assert_eq!(index.first_gap(), None);

    let mut index = Index::default();
    let overlap = index.update(vec![seg(0, 4), after_gap(2, 3, 1)], |s| format!("k{s}"));
    assert!(
        matches!(overlap, Err(Error::Discontinuity { key, expected: 4, found: 3 }) if key == "k2")
    );
}

#[test]
fn anchoring_moves_every_entry_and_trimming_keeps_offsets() {
    let mut index = Index::default();
    index
        .update(vec![seg(3, 10), seg(4, 0), seg(5, 5)], |s| format!("k{s}"))
        .unwrap();
    assert!(!index.anchored());
    index.shift_first_run(100);
    assert_eq!((index.first(), index.end()), (100, 115));
    assert_eq!(index.find(110).unwrap().seq, 5);
    assert_eq!(index.find(99), None);

    let seqs = |entries: &[Placed]| entries.iter().map(|e| e.seq).collect::<Vec<_>>();
    assert_eq!(seqs(index.trimmable(109, true)), Vec::<u64>::new());
    assert_eq!(
        seqs(index.trimmable(110, true)),
        [3, 4],
        "empty objects go too"
    );
    assert_eq!(seqs(index.trimmable(u64::MAX, true)), [3, 4]);
    assert_eq!(seqs(index.trimmable(u64::MAX, false)), [3, 4, 5]);
    index.pop_first();
    index.pop_first();
    assert_eq!((index.first(), index.end()), (110, 115));
    index.pop_first();
    assert_eq!((index.first(), index.end()), (115, 115), "kept when empty");
    index.update(vec![seg(6, 1)], |s| format!("k{s}")).unwrap();
    assert_eq!(index.get(6).map(|e| e.start), Some(115));

    // Only the first run counts from 0 before anchoring: a later one has its own starts.
    let mut index = Index::default();
    let listed = vec![seg(3, 10), seg(4, 5), after_gap(7, 200, 5)];
    index.update(listed, |s| format!("k{s}")).unwrap();
    index.shift_first_run(100);
    let starts: Vec<u64> = index.entries.iter().map(|e| e.start).collect();
    assert_eq!(starts, [100, 110, 200]);
    assert_eq!(index.missing_at(150), Some(5));
}

/// A resync that fails half-way leaves the index as it was. Found by the simulator (seed
/// 125): a follower's objects were all trimmed, the HEAD anchoring the one object left
/// lost its answers, and the index, emptied, then placed that object at the old end:
/// a false `Discontinuity` instead of `Trimmed`.
#[test]
fn a_resync_whose_anchor_fails_changes_nothing() {
    use crate::client::mem::{self, Call, Fault, MemS3, Quirks};
    use crate::store::{Expect, Meta};
    use std::sync::Arc;

    let mem = Arc::new(MemS3::new(Quirks::default()));
    let options = crate::Options::builder()
        .with_retry_attempts(2)
        .with_retry_backoff(std::time::Duration::ZERO)
        .build()
        .expect("valid options");
    let client = mem::client(&mem, "i/log.bin", options);
    let put = |seq: u64, start: u64, size: usize| {
        let meta = Meta { start, seal: 10 };
        (client.overwrite(seq, meta, 0, &vec![b'x'; size], 0, Expect::Absent)).unwrap();
    };
    put(0, 0, 10);
    put(1, 10, 10);
    let mut index = Index::default();
    index.refresh(&client).unwrap();
    assert_eq!(index.end(), 20);
    // The stream moves on, and everything this index knew is trimmed.
    put(2, 20, 10);
    put(3, 30, 10);
    for seq in 0..3 {
        mem.remove(&client.key(seq));
    }
    mem.set_faults(Some(Box::new(|call: Call<'_>| match call.op {
        "HEAD" => Fault::LoseAnswer,
        _ => Fault::None,
    })));
    assert!(index.resync(&client, true).is_err(), "the anchor failed");
    assert_eq!((index.first(), index.end()), (0, 20), "nothing changed");
    mem.set_faults(None);
    index.resync(&client, true).unwrap();
    assert_eq!(index.get(3).map(|e| e.start), Some(30));
    assert_eq!((index.first(), index.end()), (30, 40));
}
