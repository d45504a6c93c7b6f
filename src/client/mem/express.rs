//! The in-memory S3's directory buckets (S3 Express One Zone), as AWS documents them: a bucket
//! whose name ends in `--<zone-id>--x-s3` takes appends (`PutObject` at
//! `x-amz-write-offset-bytes`, the object's size, else `400 InvalidWriteOffset`; no metadata
//! but at creation; no empty body; at most [`Quirks::max_appends`] parts, then
//! `400 TooManyParts`), and answers only requests that carry the token of a session
//! `CreateSession` handed out (`403 AccessDenied`).

use super::super::express::{OFFSET_HEADER, SESSION_HEADER};
use super::http::{Parsed, Reply, etag_of};
use super::verbs::{check_condition, checked_crc};
use super::{Object, Quirks, Refusal, State};

/// `CreateSession`: a session for a directory bucket (no expiry: the client renews as AWS's
/// 5 minutes say).
pub(super) fn create_session(state: &mut State, r: &Parsed) -> Result<Reply, Refusal> {
    if !r.directory {
        return Err((400, "InvalidRequest", "not a directory bucket".into()));
    }
    let token = format!("mem-session-token-{}", state.sessions.len());
    let xml = format!(
        "<CreateSessionResult><Credentials><AccessKeyId>mem-session</AccessKeyId>\
         <SecretAccessKey>mem</SecretAccessKey><SessionToken>{token}</SessionToken>\
         </Credentials></CreateSessionResult>"
    );
    state.sessions.push(token);
    Ok(Reply::xml(xml))
}

/// Refuses a request to a directory bucket that carries no session token handed out.
pub(super) fn authorize(state: &State, r: &Parsed) -> Result<(), Refusal> {
    if !r.directory || r.op == "CREATE-SESSION" {
        return Ok(());
    }
    match r.header(SESSION_HEADER) {
        Some(token) if state.sessions.iter().any(|t| t == token) => Ok(()),
        _ => Err((403, "AccessDenied", "no session token".into())),
    }
}

/// `PutObject` at a write offset.
pub(super) fn append(
    state: &mut State,
    r: &Parsed,
    body: &[u8],
    quirks: &Quirks,
) -> Result<Reply, Refusal> {
    let offset = r.header(OFFSET_HEADER).and_then(|v| v.parse::<u64>().ok());
    let object = state.objects.get(&r.key);
    if offset != Some(object.map_or(0, |o| o.bytes.len() as u64)) {
        return Err((
            400,
            "InvalidWriteOffset",
            "the offset is not the size".into(),
        ));
    }
    check_condition(object, r)?;
    if body.is_empty() {
        return Err((400, "InvalidRequest", "an append needs a body".into()));
    }
    let crc = checked_crc(r, body, quirks)?;
    let parts = state.appends.get(&r.key).copied().unwrap_or(1);
    let clock = state.clock;
    let object = match state.objects.get_mut(&r.key) {
        None => {
            let object = Object {
                bytes: body.to_vec(),
                etag: etag_of(body),
                meta: r.meta(),
                crc: Some(crc),
                modified: clock,
            };
            state.appends.insert(r.key.clone(), 1);
            state.objects.entry(r.key.clone()).or_insert(object)
        }
        Some(_) if !r.meta().is_empty() => {
            return Err((400, "InvalidRequest", "no metadata on an append".into()));
        }
        Some(_) if parts >= quirks.max_appends => {
            return Err((400, "TooManyParts", "the object has the most parts".into()));
        }
        Some(object) => {
            object.bytes.extend_from_slice(body);
            object.etag = etag_of(&object.bytes);
            object.crc = object.crc.map(|before| before.then(crc));
            object.modified = clock;
            state.appends.insert(r.key.clone(), parts + 1);
            object
        }
    };
    Ok(Reply::empty(200).with("etag", &object.etag.clone()))
}
