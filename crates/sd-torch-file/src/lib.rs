#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod convert;
mod error;
mod globals;
mod input;
mod legacy;
mod limits;
mod pickle;
mod source;
mod tensor;
mod value;
mod writer;
mod zip;

use std::{
    collections::HashMap,
    fs::File,
    io::Cursor,
    path::{Path, PathBuf},
    sync::Mutex,
};

pub use error::{Result, TorchFileError};
pub use globals::is_allowed_global;
pub use limits::{DEFAULT_MAX_TENSOR_BYTES, TorchFileLimits};
pub use pickle::{MAX_DEPTH, unpickle};
pub use value::{DType, PARAMETER_DICT, PickleValue, StorageRef, TensorRef};
pub use writer::{TorchWriter, WriteOptions};

use source::Source;

/// How the file was laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// The zip archive of torch >= 1.6.
    Zip,
    /// The pickle stream of torch < 1.6 (`_use_new_zipfile_serialization=False`).
    Legacy,
}

/// Byte range of one storage inside the file.
#[derive(Debug, Clone, Copy)]
struct Record {
    offset: u64,
    len: u64,
}

/// An opened torch file: its unpickled root value, and lazy access to its tensors.
pub struct TorchFile {
    path: PathBuf,
    source: Source,
    format: Format,
    root: PickleValue,
    /// Storage key → where its bytes are.
    records: HashMap<String, Record>,
    /// The writer's byte order (the `byteorder` record; little when absent).
    big_endian: bool,
}

impl std::fmt::Debug for TorchFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TorchFile")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("storages", &self.records.len())
            .finish_non_exhaustive()
    }
}

impl TorchFile {
    /// Opens a torch file and unpickles its root value. Tensor data stays on disk.
    ///
    /// # Errors
    /// [`TorchFileError::Io`] when the file cannot be read, [`TorchFileError::NotTorchFile`]
    /// for other formats, [`TorchFileError::ForbiddenGlobal`] for pickles that name code,
    /// [`TorchFileError::Truncated`] for cut files, and the other variants for malformed ones.
    pub fn open(path: &Path) -> Result<TorchFile> {
        let io = |source| TorchFileError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        Self::from_source(path.to_path_buf(), Source::File(Mutex::new(file)), len)
    }

    /// Reads a torch file held in memory; `label` names it in errors.
    ///
    /// # Errors
    /// As [`TorchFile::open`].
    pub fn from_bytes(label: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<TorchFile> {
        let len = bytes.len() as u64;
        Self::from_source(label.into(), Source::Memory(bytes), len)
    }

    /// [`TorchFile::from_bytes`] under caller-chosen [`TorchFileLimits`] (see
    /// [`TorchFile::open_with_limits`]).
    ///
    /// # Errors
    /// As [`TorchFile::open_with_limits`].
    pub fn from_bytes_with_limits(
        label: impl Into<PathBuf>,
        bytes: Vec<u8>,
        limits: impl Into<TorchFileLimits>,
    ) -> Result<TorchFile> {
        let file = Self::from_bytes(label, bytes)?;
        file.check_limits(&limits.into())?;
        Ok(file)
    }

    /// [`TorchFile::open`] under caller-chosen [`TorchFileLimits`]: pickled data nested
    /// deeper than [`TorchFileLimits::pickle_depth`] and tensor storages larger than
    /// [`TorchFileLimits::max_tensor_bytes`] are refused. ([`TorchFile::open`] applies only
    /// the fixed [`MAX_DEPTH`] and the file's own length.)
    ///
    /// # Errors
    /// As [`TorchFile::open`]; [`TorchFileError::LimitExceeded`] for nesting and
    /// [`TorchFileError::Tensor`] for a storage over the caps.
    pub fn open_with_limits(path: &Path, limits: impl Into<TorchFileLimits>) -> Result<TorchFile> {
        let file = Self::open(path)?;
        file.check_limits(&limits.into())?;
        Ok(file)
    }

    /// Checks an opened file against `limits` (see [`TorchFile::open_with_limits`]).
    fn check_limits(&self, limits: &TorchFileLimits) -> Result<()> {
        if self.root.depth() > limits.pickle_depth() {
            return Err(TorchFileError::LimitExceeded {
                path: self.path.clone(),
                limit: limits.pickle_depth() as u64,
                what: "nesting levels",
            });
        }
        // Sorted, so the error names the same storage every time.
        let mut records: Vec<_> = self.records.iter().collect();
        records.sort_by_key(|(key, _)| key.as_str());
        for (key, record) in records {
            if record.len > limits.max_tensor_bytes {
                return Err(TorchFileError::Tensor {
                    path: self.path.clone(),
                    storage: key.clone(),
                    reason: format!(
                        "tensor bytes of {} is over the limit of {} (`max_tensor_bytes`)",
                        record.len, limits.max_tensor_bytes
                    ),
                });
            }
        }
        Ok(())
    }

    fn from_source(path: PathBuf, source: Source, len: u64) -> Result<TorchFile> {
        let head = source.read_range(0, len.min(4), &path)?;
        if head.is_empty() {
            return Err(TorchFileError::Truncated {
                path,
                what: "the file is empty".into(),
            });
        }
        if head.starts_with(b"PK\x03\x04") || (head.len() < 4 && b"PK\x03\x04".starts_with(&head)) {
            Self::open_zip(path, source, len)
        } else if head[0] == 0x80 {
            legacy::open(path, source, len)
        } else {
            Err(TorchFileError::NotTorchFile {
                reason: format!(
                    "starts with {:02x?}, neither a zip archive nor a pickle (a safetensors \
                     file starts with its header length)",
                    head
                ),
                path,
            })
        }
    }

    fn open_zip(path: PathBuf, source: Source, len: u64) -> Result<TorchFile> {
        let entries = match &source {
            Source::Memory(bytes) => zip::read_entries(&mut Cursor::new(bytes), len, &path)?,
            Source::File(file) => {
                let mut file = file
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                zip::read_entries(&mut *file, len, &path)?
            }
        };
        let zip_err = |reason: String| TorchFileError::Zip {
            path: path.clone(),
            reason,
        };
        // The archive folder is whatever precedes `/data.pkl` (torch uses the file stem).
        let pickles: Vec<&zip::Entry> = entries
            .iter()
            .filter(|e| {
                e.name
                    .split_once('/')
                    .is_some_and(|(dir, rest)| !dir.is_empty() && rest == "data.pkl")
            })
            .collect();
        let pkl = match pickles.as_slice() {
            [one] => *one,
            [] => {
                return Err(TorchFileError::NotTorchFile {
                    path,
                    reason: "a zip archive without `<name>/data.pkl`".into(),
                });
            }
            _ => return Err(zip_err("several `<name>/data.pkl` records".into())),
        };
        let prefix = pkl.name.trim_end_matches("data.pkl").to_string();
        let check_stored = |e: &zip::Entry| -> Result<()> {
            if e.flags & 1 != 0 {
                return Err(zip_err(format!("record `{}` is encrypted", e.name)));
            }
            if e.method != 0 {
                return Err(TorchFileError::Unsupported {
                    path: path.clone(),
                    what: format!(
                        "record `{}` is compressed (method {}); torch stores records uncompressed",
                        e.name, e.method
                    ),
                });
            }
            Ok(())
        };
        check_stored(pkl)?;

        let mut records = HashMap::new();
        let mut big_endian = false;
        for e in &entries {
            let Some(rest) = e.name.strip_prefix(&prefix) else {
                continue;
            };
            if let Some(key) = rest.strip_prefix("data/") {
                check_stored(e)?;
                records.insert(
                    key.to_string(),
                    Record {
                        offset: e.data_offset,
                        len: e.size,
                    },
                );
            } else if rest == "byteorder" {
                check_stored(e)?;
                let order = source.read_range(e.data_offset, e.size.min(16), &path)?;
                big_endian = match order.as_slice() {
                    b"little" => false,
                    b"big" => true,
                    other => {
                        return Err(zip_err(format!(
                            "unknown byteorder `{}`",
                            String::from_utf8_lossy(other)
                        )));
                    }
                };
            }
        }

        let pickle_bytes = source.read_range(pkl.data_offset, pkl.size, &path)?;
        let root = pickle::unpickle_from(&mut pickle_bytes.as_slice(), pkl.size, &path)?;
        let file = TorchFile {
            path,
            source,
            format: Format::Zip,
            root: root.value,
            records,
            big_endian,
        };
        file.check_storages(&root.storages)?;
        Ok(file)
    }

    /// Every storage the pickle names must have a record large enough for its declared size.
    fn check_storages(&self, storages: &[StorageRef]) -> Result<()> {
        for s in storages {
            let record = self
                .records
                .get(&s.key)
                .ok_or_else(|| TorchFileError::Tensor {
                    path: self.path.clone(),
                    storage: s.key.clone(),
                    reason: "the pickle names this storage but the file has no record for it"
                        .into(),
                })?;
            let needed = s.numel.checked_mul(s.dtype.size() as u64);
            if needed.is_none_or(|n| n > record.len) {
                return Err(TorchFileError::Tensor {
                    path: self.path.clone(),
                    storage: s.key.clone(),
                    reason: format!(
                        "declares {} {} elements but its record holds {} bytes",
                        s.numel,
                        s.dtype.torch_name(),
                        record.len
                    ),
                });
            }
        }
        Ok(())
    }

    /// The file this was read from (or the label given to [`TorchFile::from_bytes`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Zip archive or legacy stream.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The unpickled object `torch.save` was given.
    pub fn root(&self) -> &PickleValue {
        &self.root
    }

    /// The flat `name → tensor` map of a checkpoint: the dict under the top-level
    /// `"state_dict"` key when there is one (A1111 / Lightning `.ckpt`), else the top-level
    /// dict itself (a bare `torch.save(model.state_dict())`). In file order. Entries whose key
    /// is not a string or whose value is not a tensor are not included (reach them through
    /// [`TorchFile::root`]).
    ///
    /// # Errors
    /// [`TorchFileError::Layout`] when neither is a dict.
    pub fn state_dict(&self) -> Result<Vec<(String, TensorRef)>> {
        let dict = match self.root.get("state_dict") {
            Some(inner @ PickleValue::Dict(_)) => inner,
            _ => &self.root,
        };
        let entries = dict
            .tensor_entries()
            .ok_or_else(|| TorchFileError::Layout {
                path: self.path.clone(),
                reason: format!("expected a dict of tensors, found a {}", dict.kind()),
            })?;
        Ok(entries
            .into_iter()
            .map(|(k, t)| (k.to_string(), t.clone()))
            .collect())
    }
}
