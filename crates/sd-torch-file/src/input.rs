//! A counted, bounded byte reader for the pickle machine: every declared length is checked
//! against the bytes that remain before anything is allocated, and running out of input is
//! a typed [`TorchFileError::Truncated`] naming the file.

use std::{io::Read, path::Path};

use super::error::{Result, TorchFileError};

/// Longest text line (protocol 0 opcodes such as `GLOBAL`) we accept; real ones are short.
const MAX_LINE: usize = 64 * 1024;

/// Bytes of one pickle stream, read sequentially.
pub(super) struct Input<'a> {
    reader: &'a mut dyn Read,
    /// Bytes consumed so far.
    pos: u64,
    /// Bytes available in all (the pickle cannot claim more).
    len: u64,
    path: &'a Path,
}

impl<'a> Input<'a> {
    /// Reads at most `len` bytes from `reader`; `path` names the file in errors.
    pub(super) fn new(reader: &'a mut dyn Read, len: u64, path: &'a Path) -> Self {
        Input {
            reader,
            pos: 0,
            len,
            path,
        }
    }

    /// Bytes consumed so far.
    pub(super) fn pos(&self) -> u64 {
        self.pos
    }

    /// The file named in errors.
    pub(super) fn path(&self) -> &'a Path {
        self.path
    }

    fn truncated(&self, what: &str) -> TorchFileError {
        TorchFileError::Truncated {
            path: self.path.to_path_buf(),
            what: format!("pickle stream ends at byte {} inside {what}", self.len),
        }
    }

    fn fill(&mut self, buf: &mut [u8], what: &str) -> Result<()> {
        if buf.len() as u64 > self.len - self.pos {
            return Err(self.truncated(what));
        }
        self.reader.read_exact(buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                self.truncated(what)
            } else {
                TorchFileError::Io {
                    path: self.path.to_path_buf(),
                    source: e,
                }
            }
        })?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    /// One byte.
    pub(super) fn u8(&mut self, what: &str) -> Result<u8> {
        let mut b = [0u8; 1];
        self.fill(&mut b, what)?;
        Ok(b[0])
    }

    /// `N` bytes.
    pub(super) fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        self.fill(&mut b, what)?;
        Ok(b)
    }

    /// `n` bytes, refusing lengths longer than what remains (so a hostile length never
    /// allocates).
    pub(super) fn bytes(&mut self, n: u64, what: &str) -> Result<Vec<u8>> {
        if n > self.len - self.pos {
            return Err(self.truncated(what));
        }
        let mut buf = vec![0u8; n as usize];
        self.fill(&mut buf, what)?;
        Ok(buf)
    }

    /// A `\n`-terminated line without its terminator (protocol 0 text arguments).
    pub(super) fn line(&mut self, what: &str) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let b = self.u8(what)?;
            if b == b'\n' {
                return Ok(out);
            }
            if out.len() >= MAX_LINE {
                return Err(TorchFileError::Pickle {
                    path: self.path.to_path_buf(),
                    offset: self.pos,
                    reason: format!("text argument of {what} longer than {MAX_LINE} bytes"),
                });
            }
            out.push(b);
        }
    }
}
