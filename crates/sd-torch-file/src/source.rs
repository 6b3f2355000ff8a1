//! Random access to the bytes of a file or an in-memory buffer, so a tensor can be read by
//! offset without loading the whole checkpoint.

use std::{
    fs::File,
    io::{Read, Seek, SeekFrom},
    path::Path,
    sync::Mutex,
};

use super::error::{Result, TorchFileError};

/// Where the bytes come from.
pub(super) enum Source {
    /// An open file; the lock serialises seek + read pairs.
    File(Mutex<File>),
    /// Bytes already in memory.
    Memory(Vec<u8>),
}

impl Source {
    /// Reads `len` bytes at `offset`. Callers have checked the range against the file length.
    pub(super) fn read_range(&self, offset: u64, len: u64, path: &Path) -> Result<Vec<u8>> {
        let io = |source| TorchFileError::Io {
            path: path.to_path_buf(),
            source,
        };
        let truncated = || TorchFileError::Truncated {
            path: path.to_path_buf(),
            what: format!("{len} bytes at offset {offset}"),
        };
        match self {
            Source::Memory(bytes) => {
                let start = usize::try_from(offset).map_err(|_| truncated())?;
                let end = usize::try_from(len)
                    .ok()
                    .and_then(|n| start.checked_add(n))
                    .ok_or_else(truncated)?;
                bytes
                    .get(start..end)
                    .map(<[u8]>::to_vec)
                    .ok_or_else(truncated)
            }
            Source::File(file) => {
                let n = usize::try_from(len).map_err(|_| truncated())?;
                let mut file = file
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let file_len = file.metadata().map_err(io)?.len();
                if offset.checked_add(len).is_none_or(|end| end > file_len) {
                    return Err(truncated());
                }
                let mut buf = vec![0u8; n];
                file.seek(SeekFrom::Start(offset)).map_err(io)?;
                file.read_exact(&mut buf).map_err(io)?;
                Ok(buf)
            }
        }
    }

    /// Runs `f` with a sequential reader positioned at byte 0.
    pub(super) fn with_reader<T>(
        &self,
        path: &Path,
        f: impl FnOnce(&mut dyn Read) -> Result<T>,
    ) -> Result<T> {
        match self {
            Source::Memory(bytes) => f(&mut bytes.as_slice()),
            Source::File(file) => {
                let mut file = file
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                file.seek(SeekFrom::Start(0))
                    .map_err(|source| TorchFileError::Io {
                        path: path.to_path_buf(),
                        source,
                    })?;
                let mut reader = std::io::BufReader::new(&mut *file);
                f(&mut reader)
            }
        }
    }
}
