//! What the in-memory S3 does for each verb, on its state, as `s3-semantics.md` says S3 does.

use std::collections::BTreeMap;

use super::super::checksum::{CRC_ELEMENT, Crc, TYPE_HEADER};
use super::super::express::OFFSET_HEADER;
use super::super::{WRITER_HEADER, xml_text, xml_unescape};
use super::http::{
    Parsed, Reply, etag_of, gone, no_such_key, no_such_upload, parse_range, percent_decode,
    xml_escape,
};
use super::{MAX_PARTS, MemS3, Object, Quirks, Refusal, State, StoredPart, Upload, express};

impl MemS3 {
    pub(super) fn apply(
        &self,
        state: &mut State,
        r: &Parsed,
        body: &[u8],
    ) -> Result<Reply, Refusal> {
        express::authorize(state, r)?;
        match r.op {
            "PUT" if r.directory && r.header(OFFSET_HEADER).is_some() => {
                express::append(state, r, body, &self.quirks)
            }
            "PUT" => {
                // A new object of one part.
                state.appends.remove(&r.key);
                put(state, r, body, &self.quirks)
            }
            "CREATE-SESSION" => express::create_session(state, r),
            "GET" => get(state, r),
            "HEAD" => head(state, r),
            "DELETE" => {
                state.objects.remove(&r.key);
                state.appends.remove(&r.key);
                Ok(Reply::empty(204))
            }
            "LIST" if r.directory && r.has("start-after") => Err((
                400,
                "InvalidArgument",
                "start-after is not supported for directory buckets".into(),
            )),
            "DELETE-OBJECTS" if self.quirks.no_delete_objects => Err((
                501,
                "NotImplemented",
                "DeleteObjects is not implemented".to_owned(),
            )),
            "DELETE-OBJECTS" => delete_objects(state, r, body),
            "LIST" => Ok(self.list(state, r)),
            "LIST-UPLOADS" => Ok(list_uploads(state, r)),
            "CREATE-UPLOAD" => Ok(create_upload(state, r)),
            "UPLOAD-PART" => upload_part(state, r, body, &self.quirks),
            "COPY-PART" => copy_part(state, r, &self.quirks),
            "COMPLETE-UPLOAD" => self.complete(state, r, body),
            "ABORT-UPLOAD" => match state.uploads.remove(r.query("uploadId")) {
                Some(_) => Ok(Reply::empty(204)),
                None => Err(no_such_upload()),
            },
            _ => Err((
                501,
                "NotImplemented",
                format!("{} is not implemented", r.op),
            )),
        }
    }

    pub(super) fn list(&self, state: &State, r: &Parsed) -> Reply {
        let prefix = r.query("prefix");
        let max = (r.query("max-keys").parse().ok())
            .unwrap_or(self.quirks.page)
            .min(self.quirks.page);
        // The continuation token is the last key of the page before (opaque to the client).
        let after = match r.query("continuation-token") {
            "" => r.query("start-after"),
            token => token,
        };
        let mut keys = (state.objects.iter())
            .filter(|(key, _)| key.starts_with(prefix) && key.as_str() > after)
            .take(max + 1);
        let mut xml = String::from("<ListBucketResult><Name>mem</Name>");
        let mut last = None;
        for (key, object) in keys.by_ref().take(max) {
            xml.push_str(&format!(
                "<Contents><Key>{}</Key><LastModified>2026-01-01T00:00:{:02}.000Z\
                 </LastModified><ETag>{}</ETag><Size>{}</Size></Contents>",
                xml_escape(key),
                object.modified % 60,
                xml_escape(&object.etag),
                object.bytes.len()
            ));
            last = Some(key.clone());
        }
        let truncated = keys.next().is_some();
        xml.push_str(&format!("<IsTruncated>{truncated}</IsTruncated>"));
        if let (true, Some(last)) = (truncated, last) {
            xml.push_str(&format!(
                "<NextContinuationToken>{}</NextContinuationToken>",
                xml_escape(&last)
            ));
        }
        xml.push_str("</ListBucketResult>");
        Reply::xml(xml)
    }

    pub(super) fn complete(
        &self,
        state: &mut State,
        r: &Parsed,
        body: &[u8],
    ) -> Result<Reply, Refusal> {
        let id = r.query("uploadId");
        let Some(upload) = state.uploads.get(id) else {
            return Err(no_such_upload());
        };
        if !self.quirks.unconditional_multipart {
            check_condition(state.objects.get(&r.key), r)?;
        }
        let body = String::from_utf8_lossy(body);
        let listed: Vec<(u32, String)> = (body.split("<Part>").skip(1))
            .map(|part| {
                let number = xml_text(part, "PartNumber").parse().unwrap_or(0);
                (number, xml_unescape(&xml_text(part, "ETag")))
            })
            .collect();
        if listed.is_empty() || listed.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err((400, "InvalidPartOrder", "parts must ascend".into()));
        }
        let mut bytes = Vec::new();
        let mut crc: Option<Crc> = None;
        for (i, (number, etag)) in listed.iter().enumerate() {
            let part = upload.parts.get(number).filter(|p| &p.etag == etag);
            let Some(part) = part else {
                return Err((
                    400,
                    "InvalidPart",
                    format!("part {number} is not as listed"),
                ));
            };
            if i + 1 < listed.len() && part.bytes.len() < self.quirks.min_part {
                return Err((400, "EntityTooSmall", format!("part {number} is too small")));
            }
            bytes.extend_from_slice(&part.bytes);
            crc = Some(crc.map_or(part.crc, |sum| sum.then(part.crc)));
        }
        let crc = crc.filter(|_| upload.full_object);
        if let (Some(sent), Some(crc)) = (r.crc(bytes.len() as u64), crc)
            && sent != crc
        {
            return Err((
                400,
                "BadDigest",
                "the object's checksum does not match".into(),
            ));
        }
        let upload = state.uploads.remove(id).expect("checked above");
        let etag = format!("\"{}-{}\"", etag_of(&bytes).trim_matches('"'), listed.len());
        let object = Object {
            bytes,
            etag: etag.clone(),
            meta: upload.meta,
            crc,
            modified: state.clock,
        };
        state.objects.insert(r.key.clone(), object);
        Ok(Reply::xml(format!(
            "<CompleteMultipartUploadResult><Key>{}</Key><ETag>{}</ETag>\
             </CompleteMultipartUploadResult>",
            xml_escape(&r.key),
            xml_escape(&etag)
        )))
    }
}

/// Appends `bytes` to `key`, if there is such an object, as a writer other than every
/// client's would: its writer metadata names none of them.
pub(super) fn append_as_another(state: &mut State, key: &str, bytes: &[u8]) {
    let clock = state.clock;
    let Some(object) = state.objects.get_mut(key) else {
        return;
    };
    object.bytes.extend_from_slice(bytes);
    object.etag = etag_of(&object.bytes);
    object.crc = object.crc.map(|_| Crc::of(&object.bytes));
    object.modified = clock;
    object.meta.retain(|(name, _)| name != WRITER_HEADER);
    object.meta.push((WRITER_HEADER.into(), "another".into()));
    object.meta.sort();
}

pub(super) fn put(
    state: &mut State,
    r: &Parsed,
    body: &[u8],
    quirks: &Quirks,
) -> Result<Reply, Refusal> {
    check_condition(state.objects.get(&r.key), r)?;
    let crc = checked_crc(r, body, quirks)?;
    let etag = etag_of(body);
    let object = Object {
        bytes: body.to_vec(),
        etag: etag.clone(),
        meta: r.meta(),
        crc: Some(crc),
        modified: state.clock,
    };
    state.objects.insert(r.key.clone(), object);
    Ok(Reply::empty(200).with("etag", &etag))
}

/// The CRC32C of a PUT's or a part's `body`; `BadDigest` if the request carries another
/// (unless the server stores it anyway, as moto does).
pub(super) fn checked_crc(r: &Parsed, body: &[u8], quirks: &Quirks) -> Result<Crc, Refusal> {
    let crc = Crc::of(body);
    match r.crc(body.len() as u64) {
        Some(sent) if sent != crc && !quirks.unchecked_checksums => Err((
            400,
            "BadDigest",
            "the body's checksum does not match".into(),
        )),
        _ => Ok(crc),
    }
}

/// `If-None-Match: *` holds if there is no object, `If-Match` if its ETag matches; `If-Match`
/// on a missing key is 404, as AWS answers it.
pub(super) fn check_condition(object: Option<&Object>, r: &Parsed) -> Result<(), Refusal> {
    let failed = || (412, "PreconditionFailed", "a condition failed".to_owned());
    if r.header("if-none-match") == Some("*") && object.is_some() {
        return Err(failed());
    }
    match (r.header("if-match"), object) {
        (Some(_), None) => Err(no_such_key()),
        (Some(etag), Some(object)) if etag != object.etag => Err(failed()),
        _ => Ok(()),
    }
}

pub(super) fn get(state: &State, r: &Parsed) -> Result<Reply, Refusal> {
    let object = state.objects.get(&r.key).ok_or_else(no_such_key)?;
    let size = object.bytes.len() as u64;
    let reply = match r.header("range").and_then(parse_range) {
        None => Reply::bytes(200, object.bytes.clone()).with_crc(object),
        Some((start, _)) if start >= size => {
            return Err((416, "InvalidRange", "the range is not satisfiable".into()));
        }
        Some((start, end)) => {
            let end = end.unwrap_or(u64::MAX).min(size - 1);
            let bytes = object.bytes[start as usize..=end as usize].to_vec();
            let range = format!("bytes {start}-{end}/{size}");
            let reply = Reply::bytes(206, bytes).with("content-range", &range);
            // S3 sends the stored checksum only with an answer that holds the whole object.
            match start == 0 && end + 1 == size {
                true => reply.with_crc(object),
                false => reply,
            }
        }
    };
    Ok(reply.with_object(object))
}

pub(super) fn head(state: &State, r: &Parsed) -> Result<Reply, Refusal> {
    match state.objects.get(&r.key) {
        Some(object) => {
            let length = object.bytes.len().to_string();
            let reply = Reply::empty(200).with("content-length", &length);
            Ok(reply.with_object(object).with_crc(object))
        }
        // A HEAD's answer has no body.
        None => Err((404, "", String::new())),
    }
}

/// DeleteObjects: up to 1,000 keys, a missing one deleted as well; S3 wants the body's
/// Content-MD5. Quiet: the answer lists failures only, and none fail here.
pub(super) fn delete_objects(state: &mut State, r: &Parsed, body: &[u8]) -> Result<Reply, Refusal> {
    if r.header("content-md5").is_none() {
        let message = "Content-MD5 is required for DeleteObjects".to_owned();
        return Err((400, "InvalidRequest", message));
    }
    let text = String::from_utf8_lossy(body);
    let keys: Vec<String> = (text.split("<Key>").skip(1))
        .filter_map(|k| k.split_once("</Key>").map(|(key, _)| xml_unescape(key)))
        .collect();
    if keys.len() > 1000 {
        return Err((400, "MalformedXML", "more than 1,000 keys".to_owned()));
    }
    for key in keys {
        state.objects.remove(&key);
        state.appends.remove(&key);
    }
    let xml = "<DeleteResult></DeleteResult>".as_bytes().to_vec();
    Ok(Reply::bytes(200, xml))
}

pub(super) fn list_uploads(state: &State, r: &Parsed) -> Reply {
    let prefix = r.query("prefix");
    let mut xml = String::from("<ListMultipartUploadsResult>");
    for (id, upload) in &state.uploads {
        if upload.key.starts_with(prefix) {
            xml.push_str(&format!(
                "<Upload><Key>{}</Key><UploadId>{}</UploadId><Initiated>{:020}</Initiated>\
                 </Upload>",
                xml_escape(&upload.key),
                xml_escape(id),
                upload.initiated
            ));
        }
    }
    xml.push_str("<IsTruncated>false</IsTruncated></ListMultipartUploadsResult>");
    Reply::xml(xml)
}

pub(super) fn create_upload(state: &mut State, r: &Parsed) -> Reply {
    let id = format!("upload-{}", state.clock);
    let upload = Upload {
        key: r.key.clone(),
        meta: r.meta(),
        full_object: r.header(TYPE_HEADER) == Some("FULL_OBJECT"),
        initiated: state.clock,
        parts: BTreeMap::new(),
    };
    state.uploads.insert(id.clone(), upload);
    Reply::xml(format!(
        "<InitiateMultipartUploadResult><Key>{}</Key><UploadId>{id}</UploadId>\
         </InitiateMultipartUploadResult>",
        xml_escape(&r.key)
    ))
}

/// The part number of a part request, if within S3's limits.
pub(super) fn part_number(r: &Parsed) -> Result<u32, Refusal> {
    match r.query("partNumber").parse() {
        Ok(n @ 1..=MAX_PARTS) => Ok(n),
        _ => Err((
            400,
            "InvalidArgument",
            "part numbers go from 1 to 10,000".into(),
        )),
    }
}

pub(super) fn upload_part(
    state: &mut State,
    r: &Parsed,
    body: &[u8],
    quirks: &Quirks,
) -> Result<Reply, Refusal> {
    let number = part_number(r)?;
    let upload = (state.uploads.get_mut(r.query("uploadId"))).ok_or_else(|| gone(quirks))?;
    let crc = checked_crc(r, body, quirks)?;
    let etag = etag_of(body);
    let part = StoredPart {
        bytes: body.to_vec(),
        etag: etag.clone(),
        crc,
    };
    upload.parts.insert(number, part);
    Ok(Reply::empty(200).with("etag", &etag))
}

pub(super) fn copy_part(state: &mut State, r: &Parsed, quirks: &Quirks) -> Result<Reply, Refusal> {
    let number = part_number(r)?;
    if !state.uploads.contains_key(r.query("uploadId")) {
        return Err(gone(quirks));
    }
    let source = r.header("x-amz-copy-source").unwrap_or_default();
    let source = percent_decode(source.trim_start_matches('/'));
    // `bucket/key`: this store is one bucket.
    let source_key = source.split_once('/').map_or("", |(_, key)| key);
    let object = state.objects.get(source_key).ok_or_else(no_such_key)?;
    let condition = r.header("x-amz-copy-source-if-match");
    if !quirks.unconditional_multipart && condition.is_some_and(|etag| etag != object.etag) {
        return Err((412, "PreconditionFailed", "the source changed".into()));
    }
    let size = object.bytes.len() as u64;
    let (start, end) = match r.header("x-amz-copy-source-range").and_then(parse_range) {
        Some((start, Some(end))) if start <= end && end < size => (start, end),
        Some(_) => {
            return Err((
                400,
                "InvalidRange",
                "the copy range is not satisfiable".into(),
            ));
        }
        None => (0, size.saturating_sub(1)),
    };
    if end - start + 1 > quirks.max_copy {
        return Err((
            400,
            "InvalidRequest",
            format!(
                "The specified copy source is larger than the maximum allowable size for a \
                 copy source: {}",
                quirks.max_copy
            ),
        ));
    }
    let bytes = object.bytes[start as usize..=end as usize].to_vec();
    let crc = Crc::of(&bytes);
    let etag = etag_of(&bytes);
    let xml = format!(
        "<CopyPartResult><ETag>{}</ETag><{CRC_ELEMENT}>{}</{CRC_ELEMENT}></CopyPartResult>",
        xml_escape(&etag),
        crc.encoded()
    );
    let upload = state.uploads.get_mut(r.query("uploadId")).expect("checked");
    upload.parts.insert(number, StoredPart { bytes, etag, crc });
    Ok(Reply::xml(xml))
}
