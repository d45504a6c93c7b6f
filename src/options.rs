//! Tuning knobs of a [`Storage`](crate::Storage).

use crate::Error;

const MIB: usize = 1024 * 1024;

/// How a [`Storage`](crate::Storage) cuts the stream into objects and reads it back.
///
/// Build it with struct-update syntax so that fields added later keep their defaults:
///
/// ```
/// use s3_syncr::Options;
///
/// let options = Options { min_size: 64, ..Options::default() };
/// assert_eq!(options.min_size, 64);
/// assert_eq!(options.read_chunk, 8 * 1024 * 1024);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Size in MiB (as the original `MinSize`) from which the tail object is sealed and the next
    /// bytes go to a new object. Default 8.
    ///
    /// Every [`flush`](std::io::Write::flush) re-uploads the whole tail, so flushing every `K`
    /// bytes into objects of `S` bytes uploads about `S / 2K` times the data written: a small
    /// `min_size` keeps frequent flushes cheap, a large one means fewer objects and requests for
    /// reading. The tail also lives in memory while it is written, so `min_size` bounds the
    /// writer's memory (plus the largest single write).
    pub min_size: usize,
    /// Largest number of bytes fetched by one ranged GET when reading, and so the read side's
    /// memory bound. Default 8 MiB. Sequential reads start with a small request and double it up
    /// to this size, so that a seek followed by a short read does not fetch a whole chunk.
    pub read_chunk: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            min_size: 8,
            read_chunk: 8 * MIB,
        }
    }
}

impl Options {
    /// The sealing threshold in bytes, after checking every field.
    pub(crate) fn seal_bytes(&self) -> Result<usize, Error> {
        if self.read_chunk == 0 {
            return Err(Error::InvalidConfig(
                "read_chunk must be at least 1 byte".into(),
            ));
        }
        match self.min_size.checked_mul(MIB) {
            Some(bytes) if bytes > 0 => Ok(bytes),
            _ => Err(Error::InvalidConfig(format!(
                "min_size must be between 1 and {} MiB, got {}",
                usize::MAX / MIB,
                self.min_size
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_out_of_range_values() {
        let zero = Options {
            min_size: 0,
            ..Options::default()
        };
        assert!(matches!(zero.seal_bytes(), Err(Error::InvalidConfig(_))));
        let huge = Options {
            min_size: usize::MAX,
            ..Options::default()
        };
        assert!(matches!(huge.seal_bytes(), Err(Error::InvalidConfig(_))));
        let no_chunk = Options {
            read_chunk: 0,
            ..Options::default()
        };
        assert!(matches!(
            no_chunk.seal_bytes(),
            Err(Error::InvalidConfig(_))
        ));
        assert_eq!(Options::default().seal_bytes().unwrap(), 8 * MIB);
    }
}
