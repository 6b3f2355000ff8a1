//! A minimal zip reader and writer for torch's archives.
//!
//! Why not the `zip` crate: torch stores every record uncompressed (`ZIP_STORED`, with 64-byte
//! aligned data), and what we need from the container is the byte range of each record so a
//! tensor can be read lazily by offset from a multi-gigabyte checkpoint. That is the central
//! directory (with its zip64 variant) plus the local header lengths: a few hundred lines that
//! check every offset against the file size, with no new dependency tree (only `crc32fast`,
//! already in the workspace through `png`). Compressed or encrypted records are a typed
//! error. Reference: PKWARE APPNOTE.TXT 6.3 (sections 4.3.7, 4.3.12, 4.3.14–16, 4.5.3).

use std::{
    io::{Read, Seek, SeekFrom},
    path::Path,
};

use super::error::{Result, TorchFileError};

const EOCD_SIG: u32 = 0x0605_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const LOCAL_SIG: u32 = 0x0403_4b50;
/// End-of-central-directory record without its comment.
const EOCD_LEN: u64 = 22;
/// The comment after it is at most this long.
const MAX_COMMENT: u64 = 0xFFFF;
/// Fixed part of a central directory entry.
const CENTRAL_LEN: usize = 46;

/// One record of the archive.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    /// Path inside the archive.
    pub name: String,
    /// Absolute offset of the record's bytes in the file.
    pub data_offset: u64,
    /// Length of the record's bytes.
    pub size: u64,
    /// Compression method (0 = stored).
    pub method: u16,
    /// General purpose flags (bit 0 = encrypted).
    pub flags: u16,
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// Reads the central directory of the archive in `r` (`len` bytes long).
pub(super) fn read_entries<R: Read + Seek>(r: &mut R, len: u64, path: &Path) -> Result<Vec<Entry>> {
    let bad = |reason: String| TorchFileError::Zip {
        path: path.to_path_buf(),
        reason,
    };
    let truncated = |what: &str| TorchFileError::Truncated {
        path: path.to_path_buf(),
        what: what.to_string(),
    };
    let io = |e| TorchFileError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let read_at = |r: &mut R, at: u64, n: usize| -> Result<Vec<u8>> {
        let mut buf = vec![0u8; n];
        r.seek(SeekFrom::Start(at)).map_err(io)?;
        r.read_exact(&mut buf).map_err(io)?;
        Ok(buf)
    };

    // The end record sits in the last 22 + 65535 bytes; search backwards for its signature.
    let tail_len = len.min(EOCD_LEN + MAX_COMMENT);
    if tail_len < EOCD_LEN {
        return Err(truncated("no zip end-of-central-directory record"));
    }
    let tail_start = len - tail_len;
    let tail = read_at(r, tail_start, tail_len as usize)?;
    let eocd_pos = (0..=tail.len() - EOCD_LEN as usize)
        .rev()
        .find(|&i| le32(&tail, i) == EOCD_SIG)
        .ok_or_else(|| {
            truncated("no zip end-of-central-directory record (the end of the file is missing)")
        })?;
    let e = &tail[eocd_pos..];
    let mut count = u64::from(le16(e, 10));
    let mut cd_size = u64::from(le32(e, 12));
    let mut cd_offset = u64::from(le32(e, 16));
    let eocd_abs = tail_start + eocd_pos as u64;

    // zip64: the 32-bit fields are saturated and a locator precedes the end record.
    if count == 0xFFFF || cd_size == 0xFFFF_FFFF || cd_offset == 0xFFFF_FFFF {
        if eocd_abs < 20 {
            return Err(bad("zip64 end record locator missing".into()));
        }
        let loc = read_at(r, eocd_abs - 20, 20)?;
        if le32(&loc, 0) != ZIP64_LOCATOR_SIG {
            return Err(bad("zip64 end record locator missing".into()));
        }
        let z64 = le64(&loc, 8);
        if z64.checked_add(56).is_none_or(|end| end > len) {
            return Err(truncated("zip64 end-of-central-directory record"));
        }
        let z = read_at(r, z64, 56)?;
        if le32(&z, 0) != ZIP64_EOCD_SIG {
            return Err(bad("bad zip64 end-of-central-directory signature".into()));
        }
        count = le64(&z, 32);
        cd_size = le64(&z, 40);
        cd_offset = le64(&z, 48);
    }
    if cd_offset.checked_add(cd_size).is_none_or(|end| end > len) {
        return Err(truncated("zip central directory"));
    }
    if count > cd_size / CENTRAL_LEN as u64 {
        return Err(bad(format!(
            "{count} entries cannot fit a {cd_size}-byte directory"
        )));
    }
    let cd = read_at(r, cd_offset, cd_size as usize)?;

    let mut entries = Vec::with_capacity(count as usize);
    let mut at = 0usize;
    for _ in 0..count {
        if at + CENTRAL_LEN > cd.len() || le32(&cd, at) != CENTRAL_SIG {
            return Err(bad("bad central directory entry".into()));
        }
        let flags = le16(&cd, at + 8);
        let method = le16(&cd, at + 10);
        let mut size = u64::from(le32(&cd, at + 24));
        let comp_size = u64::from(le32(&cd, at + 20));
        let name_len = usize::from(le16(&cd, at + 28));
        let extra_len = usize::from(le16(&cd, at + 30));
        let comment_len = usize::from(le16(&cd, at + 32));
        let mut local = u64::from(le32(&cd, at + 42));
        let name_at = at + CENTRAL_LEN;
        let end = name_at + name_len + extra_len + comment_len;
        if end > cd.len() {
            return Err(bad("central directory entry runs past the directory".into()));
        }
        let name = String::from_utf8_lossy(&cd[name_at..name_at + name_len]).into_owned();
        // zip64 extra field (id 1): the saturated fields follow, in this order.
        let mut extra = &cd[name_at + name_len..name_at + name_len + extra_len];
        while extra.len() >= 4 {
            let id = le16(extra, 0);
            let n = usize::from(le16(extra, 2));
            let body = extra
                .get(4..4 + n)
                .ok_or_else(|| bad(format!("bad extra field of `{name}`")))?;
            if id == 1 {
                let mut fields = body.chunks_exact(8).map(|c| le64(c, 0));
                if size == 0xFFFF_FFFF {
                    size = fields
                        .next()
                        .ok_or_else(|| bad(format!("short zip64 field of `{name}`")))?;
                }
                if comp_size == 0xFFFF_FFFF {
                    fields
                        .next()
                        .ok_or_else(|| bad(format!("short zip64 field of `{name}`")))?;
                }
                if local == 0xFFFF_FFFF {
                    local = fields
                        .next()
                        .ok_or_else(|| bad(format!("short zip64 field of `{name}`")))?;
                }
            }
            extra = &extra[4 + n..];
        }
        at = end;

        // The local header repeats name and extra with their own lengths; torch pads the
        // local extra field so the data starts 64-byte aligned.
        if local.checked_add(30).is_none_or(|e| e > len) {
            return Err(truncated(&format!("local header of `{name}`")));
        }
        let lh = read_at(r, local, 30)?;
        if le32(&lh, 0) != LOCAL_SIG {
            return Err(bad(format!("bad local header signature for `{name}`")));
        }
        let data_offset = local + 30 + u64::from(le16(&lh, 26)) + u64::from(le16(&lh, 28));
        if data_offset.checked_add(size).is_none_or(|e| e > len) {
            return Err(truncated(&format!("record `{name}` ({size} bytes)")));
        }
        entries.push(Entry {
            name,
            data_offset,
            size,
            method,
            flags,
        });
    }
    Ok(entries)
}

/// Builds a zip archive of stored (uncompressed) records, each record's data aligned to
/// `align` bytes through a padding extra field as torch's writer does (id `FB`, `Z` bytes).
pub(super) struct ZipWriter {
    out: Vec<u8>,
    central: Vec<u8>,
    count: u64,
    align: usize,
}

impl ZipWriter {
    /// A new, empty archive.
    pub(super) fn new(align: usize) -> Self {
        ZipWriter {
            out: Vec::new(),
            central: Vec::new(),
            count: 0,
            align: align.max(1),
        }
    }

    /// Appends one record.
    ///
    /// # Errors
    /// [`TorchFileError::Write`] past 4 GiB or 65535 records (zip64 writing is not needed for
    /// embeddings and not implemented).
    pub(super) fn add(&mut self, name: &str, data: &[u8]) -> Result<()> {
        let offset = self.out.len();
        let too_big = |what: &str| TorchFileError::Write {
            reason: format!("{what} too large for a zip without zip64"),
        };
        let offset32 = u32::try_from(offset).map_err(|_| too_big("archive"))?;
        let size32 = u32::try_from(data.len()).map_err(|_| too_big("record"))?;
        let name_len = u16::try_from(name.len()).map_err(|_| too_big("record name"))?;
        if self.count >= 0xFFFF {
            return Err(too_big("record count"));
        }
        let crc = crc32fast::hash(data);
        // Bit 11: the name is UTF-8.
        let flags: u16 = if name.is_ascii() { 0 } else { 1 << 11 };
        let unpadded = offset + 30 + name.len();
        let mut pad = (self.align - unpadded % self.align) % self.align;
        if pad > 0 && pad < 4 {
            pad += self.align; // an extra field needs at least its 4-byte header
        }
        let pad16 = u16::try_from(pad).map_err(|_| too_big("alignment"))?;

        let mut local = Vec::with_capacity(30 + name.len() + pad);
        local.extend_from_slice(&LOCAL_SIG.to_le_bytes());
        local.extend_from_slice(&20u16.to_le_bytes()); // version needed: 2.0
        local.extend_from_slice(&flags.to_le_bytes());
        local.extend_from_slice(&0u16.to_le_bytes()); // stored
        local.extend_from_slice(&0u32.to_le_bytes()); // time, date: none, as torch
        local.extend_from_slice(&crc.to_le_bytes());
        local.extend_from_slice(&size32.to_le_bytes());
        local.extend_from_slice(&size32.to_le_bytes());
        local.extend_from_slice(&name_len.to_le_bytes());
        local.extend_from_slice(&pad16.to_le_bytes());
        local.extend_from_slice(name.as_bytes());
        if pad > 0 {
            local.extend_from_slice(b"FB");
            local.extend_from_slice(&(pad16 - 4).to_le_bytes());
            local.resize(local.len() + pad - 4, b'Z');
        }
        self.out.extend_from_slice(&local);
        self.out.extend_from_slice(data);

        let c = &mut self.central;
        c.extend_from_slice(&CENTRAL_SIG.to_le_bytes());
        c.extend_from_slice(&20u16.to_le_bytes()); // made by
        c.extend_from_slice(&20u16.to_le_bytes()); // needed
        c.extend_from_slice(&flags.to_le_bytes());
        c.extend_from_slice(&0u16.to_le_bytes());
        c.extend_from_slice(&0u32.to_le_bytes());
        c.extend_from_slice(&crc.to_le_bytes());
        c.extend_from_slice(&size32.to_le_bytes());
        c.extend_from_slice(&size32.to_le_bytes());
        c.extend_from_slice(&name_len.to_le_bytes());
        c.extend_from_slice(&0u16.to_le_bytes()); // extra
        c.extend_from_slice(&0u16.to_le_bytes()); // comment
        c.extend_from_slice(&0u16.to_le_bytes()); // disk
        c.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        c.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        c.extend_from_slice(&offset32.to_le_bytes());
        c.extend_from_slice(name.as_bytes());
        self.count += 1;
        Ok(())
    }

    /// Appends the central directory and end record; returns the archive.
    ///
    /// # Errors
    /// [`TorchFileError::Write`] past 4 GiB.
    pub(super) fn finish(mut self) -> Result<Vec<u8>> {
        let too_big = || TorchFileError::Write {
            reason: "archive too large for a zip without zip64".into(),
        };
        let cd_offset = u32::try_from(self.out.len()).map_err(|_| too_big())?;
        let cd_size = u32::try_from(self.central.len()).map_err(|_| too_big())?;
        let count = u16::try_from(self.count).map_err(|_| too_big())?;
        self.out.append(&mut self.central);
        let o = &mut self.out;
        o.extend_from_slice(&EOCD_SIG.to_le_bytes());
        o.extend_from_slice(&0u16.to_le_bytes());
        o.extend_from_slice(&0u16.to_le_bytes());
        o.extend_from_slice(&count.to_le_bytes());
        o.extend_from_slice(&count.to_le_bytes());
        o.extend_from_slice(&cd_size.to_le_bytes());
        o.extend_from_slice(&cd_offset.to_le_bytes());
        o.extend_from_slice(&0u16.to_le_bytes());
        Ok(self.out)
    }
}
