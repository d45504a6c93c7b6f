//! The stream's oldest objects, listed afresh for a trim: pages from the first object on, up
//! to the offset the trim keeps, not the whole stream.

use super::{Index, located};
use crate::Error;
use crate::layout::Object;
use crate::store::Client;

/// The objects from the stream's first one on, as an index of their own, listed a page at a
/// time until one ends after stream offset `before` (objects never exceed what their sizes
/// add up to from the first one's start: gaps only move later ones further), or up to object
/// `upto` at most (a writer's own objects come after it). Also whether it holds the stream's
/// last object. Costs a LIST per 1,000 objects, a HEAD of the first (twice: to know when to
/// stop, then to anchor the index, the first may have been deleted between), and those of
/// [`located()`] around gaps.
pub(crate) fn listed_through(
    client: &Client,
    before: u64,
    upto: Option<u64>,
) -> Result<(Index, bool), Error> {
    let mut listed: Vec<Object> = Vec::new();
    // Where the first object listed starts, then where the objects listed end.
    let (mut first_start, mut end) = (None, None);
    let whole = loop {
        let (page, more) = client.list_page_after(listed.last().map(|s| s.seq), 1000)?;
        let Some(first) = page.first() else {
            break !more;
        };
        if first_start.is_none() {
            first_start = Some(client.recorded_start(first.seq)?.unwrap_or(0));
            end = first_start;
        }
        let past = upto.is_some_and(|upto| page.iter().any(|s| s.seq > upto));
        let page = page
            .into_iter()
            .filter(|s| upto.is_none_or(|upto| s.seq <= upto));
        for s in page {
            end = end.map(|end| end + s.size);
            listed.push(s);
        }
        if !more || past {
            break true;
        }
        if end.is_some_and(|end| end > before) {
            break false;
        }
    };
    let mut view = Index::default();
    view.update(located(client, listed)?, |seq| client.key(seq))?;
    view.anchor(client)?;
    // None up to `upto`: the stream starts past the writer's index, at the first listed.
    if view.entries.is_empty() {
        view.origin = Some(first_start.unwrap_or(0));
    }
    Ok((view, whole))
}
