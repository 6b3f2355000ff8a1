//! PyTorch's parameter layout to burn's, fast on f32.
//!
//! burn-store's [`PyTorchToBurnAdapter`] transposes linear weights (`[out, in]` → `[in, out]`)
//! one element at a time, each element a call to `memcpy`: over a second for SD 1.5's 245 M
//! UNet linear weights, about half a second for its 85 M text-encoder ones.
//! [`PyTorchLayoutF32`] does the same job with a tiled transpose on f32 data (what the
//! loaders hand it, after their cast) and leaves everything else — other dtypes, the norm
//! parameter renames — to burn's adapter. The text encoder's, the UNet's and the VAE's
//! loaders all use it.

use burn::store::{ModuleAdapter, ModuleContext, PyTorchToBurnAdapter, bridge, burn_pack};
use burn::tensor::{DType, Shape, TensorData};
use rayon::prelude::*;

/// Output rows per transpose task: each input row contributes 32 floats (two cache lines),
/// and the 32 output rows being written stay in L1/L2 for matrices up to ~4k wide.
const TILE: usize = 32;

/// [`PyTorchToBurnAdapter`] with a tiled transpose for f32 linear weights. Chain it after a
/// cast to f32, so that the transpose sees f32 data:
///
/// ```
/// use burn::store::{FloatCastAdapter, ModuleAdapter};
/// use burn::tensor::DType;
/// use sd_kernels::PyTorchLayoutF32;
///
/// let adapter = FloatCastAdapter::to(DType::F32).chain(PyTorchLayoutF32);
/// # let _ = adapter;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct PyTorchLayoutF32;

impl ModuleAdapter for PyTorchLayoutF32 {
    fn adapt(&self, tensor: burn_pack::Tensor, ctx: ModuleContext<'_>) -> burn_pack::Tensor {
        let is_linear_weight = ctx.module_type() == Some("Struct:Linear")
            && tensor.name.ends_with(".weight")
            && tensor.shape.len() == 2;
        if !is_linear_weight || tensor.dtype != DType::F32 {
            return PyTorchToBurnAdapter.adapt(tensor, ctx);
        }
        let (rows, cols) = (tensor.shape[0], tensor.shape[1]);
        let name = tensor.name.clone();
        bridge::map_data(
            tensor,
            name,
            DType::F32,
            Shape::from([cols, rows]),
            move |data: TensorData| match data.as_slice::<f32>() {
                Ok(values) => TensorData::new(transpose(values, rows, cols), [cols, rows]),
                // Declared f32 but not: leave it for the applier's dtype and shape checks.
                Err(_) => data,
            },
        )
    }

    fn get_alternative_param_name(&self, param_name: &str, container_type: &str) -> Option<String> {
        PyTorchToBurnAdapter.get_alternative_param_name(param_name, container_type)
    }

    fn clone_box(&self) -> Box<dyn ModuleAdapter> {
        Box::new(*self)
    }
}

/// The `[cols, rows]` transpose of the row-major `[rows, cols]` matrix `values`, a band of
/// [`TILE`] output rows per rayon task.
fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; values.len()];
    if values.is_empty() {
        return out;
    }
    out.par_chunks_mut(TILE * rows)
        .enumerate()
        .for_each(|(band, out_rows)| {
            let first_col = band * TILE;
            let width = out_rows.len() / rows;
            for (row, source) in values.chunks_exact(cols).enumerate() {
                for (col, &value) in source[first_col..first_col + width].iter().enumerate() {
                    out_rows[col * rows + row] = value;
                }
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposes_ragged_shapes() {
        for (rows, cols) in [(1, 1), (3, 70), (70, 3), (33, 65), (64, 32)] {
            let values: Vec<f32> = (0..rows * cols).map(|v| v as f32).collect();
            let out = transpose(&values, rows, cols);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(out[c * rows + r], values[r * cols + c], "{rows}x{cols}");
                }
            }
        }
    }
}
