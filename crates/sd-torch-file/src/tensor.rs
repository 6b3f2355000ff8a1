//! Reading one tensor's elements: the storage range its view covers, gathered through its
//! strides into row-major order, byte-swapped from a big-endian writer, and converted.

use super::{
    TorchFile,
    error::{Result, TorchFileError},
    value::{DType, TensorRef},
};

/// A view may hold more elements than its storage (stride 0, from `expand`); gathering it
/// allocates its full size, which we allow only up to this many bytes.
const MAX_EXPANDED_BYTES: usize = 256 << 20;

impl TorchFile {
    fn tensor_err(&self, t: &TensorRef, reason: String) -> TorchFileError {
        TorchFileError::Tensor {
            path: self.path.clone(),
            storage: t.storage.key.clone(),
            reason,
        }
    }

    /// The tensor's elements in row-major order, `dtype.size()` little-endian bytes each,
    /// in its own dtype (what a safetensors file stores).
    ///
    /// # Errors
    /// [`TorchFileError::Tensor`] when the view (offset, shape, strides) reaches past its
    /// storage or its record is missing; [`TorchFileError::Io`] on read failures.
    pub fn tensor_bytes(&self, t: &TensorRef) -> Result<Vec<u8>> {
        let record = *self
            .records
            .get(&t.storage.key)
            .ok_or_else(|| self.tensor_err(t, "no record holds this storage".into()))?;
        let elem = t.dtype.size();
        if t.shape.len() != t.strides.len() {
            return Err(self.tensor_err(t, "shape and strides differ in length".into()));
        }
        let numel = t
            .shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or_else(|| self.tensor_err(t, format!("shape {:?} overflows", t.shape)))?;
        if numel == 0 {
            return Ok(Vec::new());
        }
        // Highest element index the view touches.
        let last = t
            .shape
            .iter()
            .zip(&t.strides)
            .try_fold(t.storage_offset, |acc, (&d, &s)| {
                (d - 1).checked_mul(s).and_then(|x| acc.checked_add(x))
            })
            .ok_or_else(|| self.tensor_err(t, "view offsets overflow".into()))?;
        let storage_elems = record.len / elem as u64;
        if last as u64 >= storage_elems {
            return Err(self.tensor_err(
                t,
                format!(
                    "view (offset {}, shape {:?}, strides {:?}) reaches element {last} of a \
                     storage of {storage_elems} {} elements",
                    t.storage_offset,
                    t.shape,
                    t.strides,
                    t.dtype.torch_name()
                ),
            ));
        }
        let out_bytes = numel
            .checked_mul(elem)
            .ok_or_else(|| self.tensor_err(t, "size overflows".into()))?;
        if numel as u64 > storage_elems && out_bytes > MAX_EXPANDED_BYTES {
            return Err(self.tensor_err(
                t,
                format!("expanded view of {numel} elements exceeds {MAX_EXPANDED_BYTES} bytes"),
            ));
        }
        let first = t.storage_offset;
        let span = (last - first + 1) as u64 * elem as u64;
        let raw =
            self.source
                .read_range(record.offset + first as u64 * elem as u64, span, &self.path)?;

        let mut out = if t.strides == TensorRef::contiguous_strides(&t.shape) {
            raw
        } else {
            gather(&raw, &t.shape, &t.strides, elem, out_bytes)
        };
        if self.big_endian && elem > 1 {
            for chunk in out.chunks_exact_mut(elem) {
                chunk.reverse();
            }
        }
        Ok(out)
    }

    /// The tensor's elements as `f32`, row-major. f16, bf16 and integers up to 2^24 convert
    /// exactly; f64 rounds to nearest; bool is 0 or 1.
    ///
    /// # Errors
    /// As [`TorchFile::tensor_bytes`].
    pub fn tensor_f32(&self, t: &TensorRef) -> Result<Vec<f32>> {
        Ok(bytes_to_f32(&self.tensor_bytes(t)?, t.dtype))
    }
}

/// Copies the strided elements of `raw` (which starts at the view's first element) into
/// row-major order.
fn gather(
    raw: &[u8],
    shape: &[usize],
    strides: &[usize],
    elem: usize,
    out_bytes: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(out_bytes);
    let mut index = vec![0usize; shape.len()];
    let mut pos = 0usize; // element offset of `index` from the first element
    loop {
        out.extend_from_slice(&raw[pos * elem..(pos + 1) * elem]);
        // Odometer increment, last dimension fastest.
        let mut dim = shape.len();
        loop {
            if dim == 0 {
                return out;
            }
            dim -= 1;
            index[dim] += 1;
            pos = pos.wrapping_add(strides[dim]);
            if index[dim] < shape[dim] {
                break;
            }
            // Wrapping: a huge stride on a size-1 dimension is stepped over and back.
            pos = pos.wrapping_sub(strides[dim].wrapping_mul(shape[dim]));
            index[dim] = 0;
        }
    }
}

/// Converts little-endian elements of `dtype` to `f32`.
pub(super) fn bytes_to_f32(bytes: &[u8], dtype: DType) -> Vec<f32> {
    let n = dtype.size();
    let chunks = bytes.chunks_exact(n);
    match dtype {
        DType::F32 => chunks
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        DType::F16 => chunks
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        DType::BF16 => chunks
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        DType::F64 => chunks
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
        DType::I64 => chunks
            .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
        DType::I32 => chunks
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)
            .collect(),
        DType::I16 => chunks
            .map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])))
            .collect(),
        DType::I8 => chunks.map(|c| f32::from(c[0] as i8)).collect(),
        DType::U8 => chunks.map(|c| f32::from(c[0])).collect(),
        DType::Bool => chunks.map(|c| if c[0] != 0 { 1.0 } else { 0.0 }).collect(),
    }
}
