//! s3s-fs 0.14 keeps an object's checksums in a file beside it (its "internal info"), written by
//! PutObject; CompleteMultipartUpload replaces the object but keeps that file's checksums,
//! adding only the new ETag. The object then claims the checksum of the bytes it had before,
//! and a reader that checks it (s3-syncr does) finds it damaged. After each completed upload,
//! [`forget`] drops them: the object has no checksum, as s3s-fs keeps none for uploads.

use std::io;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Drops the checksums s3s-fs, serving `root`, keeps for object `key` of `bucket`.
pub fn forget(root: &Path, bucket: &str, key: &str) -> io::Result<()> {
    // s3s-fs's own naming of the file (`FileSystem::get_internal_info_path`).
    let path = root.join(format!(
        ".bucket-{}.object-{}.internal.json",
        URL_SAFE_NO_PAD.encode(bucket),
        URL_SAFE_NO_PAD.encode(key)
    ));
    let mut info: serde_json::Map<String, serde_json::Value> = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(io::Error::other)?,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err),
    };
    let before = info.len();
    info.retain(|name, _| !name.starts_with("checksum_"));
    if info.len() == before {
        return Ok(());
    }
    // Written aside and renamed, as s3s-fs writes it: a reader sees the old file or the new.
    let aside = path.with_extension("json.s3-syncr");
    std::fs::write(&aside, serde_json::to_vec(&info).map_err(io::Error::other)?)?;
    std::fs::rename(&aside, &path)
}
