//! Reading the header of a `.safetensors` file without reading its tensors.
//!
//! The format is an 8-byte little-endian header length, a JSON object mapping tensor names to
//! `{dtype, shape, data_offsets}` (plus an optional `__metadata__` string map), then the data.
//! Everything here is checked against the file's real size, so a hostile header that claims
//! 2^60 bytes is an error, never an allocation.

use std::{
    collections::BTreeMap,
    fs::File,
    io::Read,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use crate::error::{CoreError, Result};

/// The largest header this reader accepts (the safetensors reference implementation's limit).
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Element types a safetensors file can hold, as its header names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
#[non_exhaustive]
pub enum DType {
    /// 64-bit float.
    F64,
    /// 32-bit float.
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    BF16,
    /// 8-bit float, e4m3.
    F8E4M3,
    /// 8-bit float, e5m2.
    F8E5M2,
    /// Signed integers of 64, 32, 16 and 8 bits.
    I64,
    /// 32-bit signed integer.
    I32,
    /// 16-bit signed integer.
    I16,
    /// 8-bit signed integer.
    I8,
    /// 8-bit unsigned integer.
    U8,
    /// Boolean, one byte each.
    Bool,
}

impl DType {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "F64" => Self::F64,
            "F32" => Self::F32,
            "F16" => Self::F16,
            "BF16" => Self::BF16,
            "F8_E4M3" => Self::F8E4M3,
            "F8_E5M2" => Self::F8E5M2,
            "I64" => Self::I64,
            "I32" => Self::I32,
            "I16" => Self::I16,
            "I8" => Self::I8,
            "U8" => Self::U8,
            "BOOL" => Self::Bool,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> u64 {
        match self {
            Self::F64 | Self::I64 => 8,
            Self::F32 | Self::I32 => 4,
            Self::F16 | Self::BF16 | Self::I16 => 2,
            Self::F8E4M3 | Self::F8E5M2 | Self::I8 | Self::U8 | Self::Bool => 1,
        }
    }

    /// Whether this is a floating-point type (the weights of a network).
    pub fn is_float(self) -> bool {
        matches!(
            self,
            Self::F64 | Self::F32 | Self::F16 | Self::BF16 | Self::F8E4M3 | Self::F8E5M2
        )
    }
}

/// One tensor's entry in the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Element type.
    pub dtype: DType,
    /// Shape, outermost dimension first.
    pub shape: Vec<usize>,
    /// Byte range of the data, relative to the end of the header.
    pub data_offsets: (u64, u64),
}

impl TensorInfo {
    /// Number of elements.
    pub fn numel(&self) -> u64 {
        self.shape.iter().map(|&d| d as u64).product()
    }
}

/// The parsed header of a safetensors file.
#[derive(Debug, Clone)]
pub struct SafetensorsHeader {
    /// The file it was read from.
    pub path: PathBuf,
    /// Tensors by name, sorted.
    pub tensors: BTreeMap<String, TensorInfo>,
    /// The free-form `__metadata__` map (often `{"format": "pt"}`).
    pub metadata: BTreeMap<String, String>,
    /// Where the data section starts in the file.
    pub data_start: u64,
}

#[derive(Deserialize)]
struct RawEntry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: (u64, u64),
}

impl SafetensorsHeader {
    /// Reads and validates the header of the file at `path`.
    ///
    /// # Errors
    /// [`CoreError::Io`] when the file cannot be read, [`CoreError::InvalidSafetensors`] when
    /// it is truncated, its JSON is malformed, a dtype is unknown, or a tensor's byte range
    /// does not match its shape or lies outside the file.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| CoreError::io(path, e))?;
        let file_len = file.metadata().map_err(|e| CoreError::io(path, e))?.len();
        Self::read_from(path, file, file_len)
    }

    /// [`read`](Self::read), also refusing any tensor larger than
    /// [`Limits::max_tensor_bytes`](crate::limits::Limits::max_tensor_bytes).
    ///
    /// # Errors
    /// As [`read`](Self::read); [`CoreError::InvalidSafetensors`] naming the tensor when one
    /// is over the cap.
    pub fn read_with_limits(
        path: impl AsRef<Path>,
        limits: &crate::limits::Limits,
    ) -> Result<Self> {
        let header = Self::read(path)?;
        header.check_limits(limits)?;
        Ok(header)
    }

    /// Refuses a header with a tensor larger than [`Limits::max_tensor_bytes`](crate::limits::Limits::max_tensor_bytes).
    ///
    /// # Errors
    /// [`CoreError::InvalidSafetensors`] naming the file and the tensor.
    pub fn check_limits(&self, limits: &crate::limits::Limits) -> Result<()> {
        for (name, info) in &self.tensors {
            let bytes = info.data_offsets.1 - info.data_offsets.0;
            if let Err(e) = limits.check_tensor_bytes(bytes) {
                return Err(CoreError::InvalidSafetensors {
                    path: self.path.clone(),
                    reason: format!("tensor `{name}`"),
                    source: Some(Box::new(e.into())),
                });
            }
        }
        Ok(())
    }

    /// Reads and validates the header of a safetensors image held in memory (a `.ckpt`
    /// converted by [`TorchFile::to_safetensors`](sd_torch_file::TorchFile::to_safetensors));
    /// `path` names it in errors.
    ///
    /// # Errors
    /// As [`read`](Self::read), without the I/O ones.
    pub fn from_image(path: impl AsRef<Path>, image: &[u8]) -> Result<Self> {
        Self::read_from(path.as_ref(), image, image.len() as u64)
    }

    /// The header at the start of `source`, a file or image `len` bytes long.
    fn read_from(path: &Path, mut source: impl Read, len: u64) -> Result<Self> {
        let invalid = |reason: String| CoreError::InvalidSafetensors {
            path: path.to_owned(),
            reason,
            source: None,
        };
        let mut len_bytes = [0u8; 8];
        source
            .read_exact(&mut len_bytes)
            .map_err(|_| invalid(format!("{len} bytes is too short for a header")))?;
        let header_len = u64::from_le_bytes(len_bytes);
        if header_len > MAX_HEADER_BYTES || header_len + 8 > len {
            return Err(invalid(format!(
                "header claims {header_len} bytes but the file has {len}"
            )));
        }
        let mut json = vec![0u8; header_len as usize];
        source
            .read_exact(&mut json)
            .map_err(|e| CoreError::io(path, e))?;
        Self::parse(path, &json, 8 + header_len, len)
    }

    fn parse(path: &Path, json: &[u8], data_start: u64, file_len: u64) -> Result<Self> {
        let invalid = |reason: String| CoreError::InvalidSafetensors {
            path: path.to_owned(),
            reason,
            source: None,
        };
        let bad_json = |reason: String, e: serde_json::Error| CoreError::InvalidSafetensors {
            path: path.to_owned(),
            reason,
            source: Some(Box::new(e.into())),
        };
        let raw: BTreeMap<String, serde_json::Value> =
            serde_json::from_slice(json).map_err(|e| bad_json("header JSON".into(), e))?;
        let data_len = file_len - data_start;
        let mut tensors = BTreeMap::new();
        let mut metadata = BTreeMap::new();
        for (name, value) in raw {
            if name == "__metadata__" {
                metadata = serde_json::from_value(value)
                    .map_err(|e| bad_json("__metadata__".into(), e))?;
                continue;
            }
            let entry: RawEntry = serde_json::from_value(value)
                .map_err(|e| bad_json(format!("tensor `{name}`"), e))?;
            let dtype = DType::parse(&entry.dtype).ok_or_else(|| {
                invalid(format!("tensor `{name}`: unknown dtype {}", entry.dtype))
            })?;
            let (start, end) = entry.data_offsets;
            // The byte size must also fit this machine's `usize`: the store allocates it.
            let expected = entry
                .shape
                .iter()
                .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d as u64))
                .filter(|&bytes| usize::try_from(bytes).is_ok());
            if end < start || end > data_len || expected != Some(end - start) {
                return Err(invalid(format!(
                    "tensor `{name}`: {:?} {:?} does not fit bytes {start}..{end} of {data_len}",
                    dtype, entry.shape
                )));
            }
            tensors.insert(
                name,
                TensorInfo {
                    dtype,
                    shape: entry.shape,
                    data_offsets: (start, end),
                },
            );
        }
        check_layout(&tensors, data_len).map_err(invalid)?;
        Ok(Self {
            path: path.to_owned(),
            tensors,
            metadata,
            data_start,
        })
    }
}

/// The rule of the `safetensors` library (`Metadata::validate` and `read_metadata`): taken in
/// order of their offsets, the tensors tile the data section exactly, from its first byte to
/// its last. Overlapping tensors would share (and silently corrupt) each other's weights; a
/// gap or trailing bytes mean the header does not describe the file.
fn check_layout(
    tensors: &BTreeMap<String, TensorInfo>,
    data_len: u64,
) -> std::result::Result<(), String> {
    let mut by_offset: Vec<(&(u64, u64), &String)> = tensors
        .iter()
        .map(|(name, info)| (&info.data_offsets, name))
        .collect();
    by_offset.sort_unstable();
    let mut covered = 0u64;
    let mut previous: Option<&String> = None;
    for (&(start, end), name) in by_offset {
        if start < covered {
            let other = previous.map_or(String::new(), |p| format!(" `{p}`"));
            return Err(format!(
                "tensor `{name}`: bytes {start}..{end} overlap the tensor{other} before it \
                 (which ends at {covered})"
            ));
        }
        if start > covered {
            return Err(format!(
                "tensor `{name}`: bytes {start}..{end} leave a gap of {} bytes after byte \
                 {covered}",
                start - covered
            ));
        }
        covered = end;
        previous = Some(name);
    }
    if covered != data_len {
        return Err(format!(
            "the tensors cover {covered} bytes of the {data_len}-byte data section"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(bytes: &[u8]) -> (tempfile::NamedTempFile, PathBuf) {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        std::io::Write::write_all(&mut file, bytes).expect("write temp file");
        let path = file.path().to_owned();
        (file, path)
    }

    fn file_with_header(json: &str, data: usize) -> Vec<u8> {
        let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(json.as_bytes());
        bytes.extend(std::iter::repeat_n(0u8, data));
        bytes
    }

    #[test]
    fn reads_a_valid_header() {
        let (_t, p) = write(&file_with_header(
            r#"{"__metadata__":{"format":"pt"},"w":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]}}"#,
            12,
        ));
        let h = SafetensorsHeader::read(&p).expect("valid");
        assert_eq!(h.tensors["w"].dtype, DType::F16);
        assert_eq!(h.tensors["w"].numel(), 6);
        assert_eq!(h.metadata["format"], "pt");
    }

    #[test]
    fn offsets_out_of_order_in_the_json_are_fine_when_they_tile_the_data() {
        let (_t, p) = write(&file_with_header(
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},"b":{"dtype":"F16","shape":[0],"data_offsets":[0,0]},"c":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}}"#,
            16,
        ));
        let h = SafetensorsHeader::read(&p).expect("valid");
        assert_eq!(h.tensors.len(), 3);
    }

    #[test]
    fn overlapping_tensors_are_named() {
        let (_t, p) = write(&file_with_header(
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
            8,
        ));
        let err = SafetensorsHeader::read(&p).expect_err("overlap");
        let message = err.to_string();
        assert!(
            message.contains("`b`") && message.contains("overlap"),
            "{message}"
        );
    }

    #[test]
    fn rejects_bad_files_with_the_path_in_the_message() {
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![1, 2, 3],
            u64::MAX.to_le_bytes().to_vec(),
            (1u64 << 60).to_le_bytes().to_vec(),
            file_with_header("{not json", 0),
            file_with_header(
                r#"{"w":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}}"#,
                1,
            ),
            file_with_header(
                r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
                8,
            ),
            file_with_header(
                r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[8,0]}}"#,
                16,
            ),
            file_with_header(
                r#"{"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,16]}}"#,
                16,
            ),
            // Overlapping, gapped, and short of the data: what the safetensors library refuses.
            file_with_header(
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                12,
            ),
            file_with_header(
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}}"#,
                20,
            ),
            file_with_header(
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
                12,
            ),
        ];
        for bytes in cases {
            let (_t, p) = write(&bytes);
            let err = SafetensorsHeader::read(&p).expect_err("must be rejected");
            assert!(matches!(err, CoreError::InvalidSafetensors { .. }), "{err}");
            assert!(err.to_string().contains(&p.display().to_string()), "{err}");
        }
    }
}
