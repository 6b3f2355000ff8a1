//! Conversion to the safetensors format, keeping each tensor's dtype, so a `.ckpt` can be
//! handed to any safetensors reader (burn's `SafetensorsStore::from_bytes`). The header is
//! written first from the tensor descriptions, then each tensor is read and written in turn:
//! streaming to a file needs memory for one tensor at a time.
//! Format: <https://github.com/huggingface/safetensors#format>.

use std::{collections::HashSet, io::Write};

use super::{
    TorchFile,
    error::{Result, TorchFileError},
    value::TensorRef,
};

impl TorchFile {
    /// Writes `tensors` (e.g. [`TorchFile::state_dict`]) as a safetensors file to `out`, in
    /// their original dtypes, made contiguous. Views that share a storage become separate
    /// tensors.
    ///
    /// # Errors
    /// [`TorchFileError::Layout`] for a repeated name, the errors of
    /// [`TorchFile::tensor_bytes`], and [`TorchFileError::Output`] when `out` fails.
    pub fn write_safetensors(
        &self,
        tensors: &[(String, TensorRef)],
        out: &mut dyn Write,
    ) -> Result<()> {
        let header = self.safetensors_header(tensors)?;
        let write = |out: &mut dyn Write, bytes: &[u8]| {
            out.write_all(bytes)
                .map_err(|source| TorchFileError::Output {
                    what: "safetensors",
                    source,
                })
        };
        write(out, &(header.len() as u64).to_le_bytes())?;
        write(out, &header)?;
        for (_, t) in tensors {
            write(out, &self.tensor_bytes(t)?)?;
        }
        Ok(())
    }

    /// [`TorchFile::write_safetensors`] into memory, ready for
    /// `SafetensorsStore::from_bytes`.
    ///
    /// # Errors
    /// As [`TorchFile::write_safetensors`].
    pub fn to_safetensors(&self, tensors: &[(String, TensorRef)]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.write_safetensors(tensors, &mut out)?;
        Ok(out)
    }

    fn safetensors_header(&self, tensors: &[(String, TensorRef)]) -> Result<Vec<u8>> {
        let mut seen = HashSet::new();
        let mut map = serde_json::Map::new();
        let mut offset = 0u64;
        for (name, t) in tensors {
            if !seen.insert(name.as_str()) || name == "__metadata__" {
                return Err(TorchFileError::Layout {
                    path: self.path.clone(),
                    reason: format!("tensor name `{name}` repeated or reserved"),
                });
            }
            let bytes = t
                .shape
                .iter()
                .try_fold(t.dtype.size() as u64, |n, &d| n.checked_mul(d as u64))
                .ok_or_else(|| TorchFileError::Layout {
                    path: self.path.clone(),
                    reason: format!("tensor `{name}` shape {:?} overflows", t.shape),
                })?;
            // Stride-0 views can each claim up to 2^64 bytes; their sum must not wrap.
            let end = offset
                .checked_add(bytes)
                .ok_or_else(|| TorchFileError::Layout {
                    path: self.path.clone(),
                    reason: format!("tensor `{name}` ends past 2^64 bytes of safetensors data"),
                })?;
            map.insert(
                name.clone(),
                serde_json::json!({
                    "dtype": t.dtype.safetensors_dtype().to_string(),
                    "shape": t.shape,
                    "data_offsets": [offset, end],
                }),
            );
            offset = end;
        }
        let mut header = serde_json::Value::Object(map).to_string().into_bytes();
        // The data must start 8-byte aligned; safetensors pads the header with spaces.
        header.resize(header.len().div_ceil(8) * 8, b' ');
        Ok(header)
    }
}
