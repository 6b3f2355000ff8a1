//! The model hashes A1111 prints in infotext (`Model hash: 7460a6fa`).
//!
//! A1111 has two: the legacy 8-hex hash (SHA-256 of the 64 KiB at offset 1 MiB, so files
//! shorter than that all hash the empty string) and, since v1.0, the first 10 hex digits of the
//! SHA-256 of the whole file (`shorthash`), which its infotext writes today.

use std::{
    fs::File,
    io::{Read, Seek, SeekFrom},
    path::Path,
};

use sha2::{Digest, Sha256};

use crate::error::{CoreError, Result};

const LEGACY_OFFSET: u64 = 0x10_0000;
const LEGACY_LEN: u64 = 0x1_0000;

/// Both A1111 hashes of a checkpoint file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModelHash {
    /// The legacy 8-hex hash (`sd_models.model_hash`).
    pub legacy: String,
    /// The full SHA-256 of the file, 64 hex digits.
    pub sha256: String,
}

impl ModelHash {
    /// Hashes the file at `path` (reads it whole once).
    ///
    /// # Errors
    /// [`CoreError::Io`] naming the file.
    pub fn compute(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let io = |e| CoreError::io(path, e);
        let mut file = File::open(path).map_err(io)?;

        let mut legacy = Vec::new();
        file.seek(SeekFrom::Start(LEGACY_OFFSET)).map_err(io)?;
        (&mut file)
            .take(LEGACY_LEN)
            .read_to_end(&mut legacy)
            .map_err(io)?;

        file.seek(SeekFrom::Start(0)).map_err(io)?;
        let mut full = Sha256::new();
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buffer).map_err(io)?;
            if n == 0 {
                break;
            }
            full.update(&buffer[..n]);
        }
        Ok(Self {
            legacy: hex(&Sha256::digest(&legacy))[..8].to_owned(),
            sha256: hex(&full.finalize()),
        })
    }

    /// The hashes of a checkpoint held in memory (the same as of the file it came from).
    pub fn of_bytes(bytes: &[u8]) -> Self {
        let start = (LEGACY_OFFSET as usize).min(bytes.len());
        let end = (LEGACY_OFFSET + LEGACY_LEN).min(bytes.len() as u64) as usize;
        Self {
            legacy: hex(&Sha256::digest(&bytes[start..end]))[..8].to_owned(),
            sha256: hex(&Sha256::digest(bytes)),
        }
    }

    /// The 10-hex `shorthash` A1111's infotext shows as `Model hash`.
    pub fn short(&self) -> &str {
        &self.sha256[..10]
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_hashlib() {
        // python3 -c "import hashlib; d=bytes(range(256))*8192;
        //   print(hashlib.sha256(d[0x100000:0x110000]).hexdigest()[:8], hashlib.sha256(d).hexdigest())"
        let data: Vec<u8> = (0..8192).flat_map(|_| 0..=255u8).collect();
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        std::io::Write::write_all(&mut file, &data).expect("write");
        let hash = ModelHash::compute(file.path()).expect("hash");
        assert_eq!(hash.legacy, "7daca209");
        assert_eq!(
            hash.sha256,
            "91d3beb88a9b2f778a6c44a1c53b63d3c79931845a9aef84b3fb414610bd1938"
        );
        assert_eq!(hash.short(), "91d3beb88a");
    }

    #[test]
    fn short_files_hash_the_empty_legacy_window_like_a1111() {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        let hash = ModelHash::compute(file.path()).expect("hash");
        assert_eq!(hash.legacy, "e3b0c442");
    }
}
