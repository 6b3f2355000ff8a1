//! Saving latents as a `.safetensors` file (`--save-latents`).

use std::path::Path;

use burn::tensor::Tensor;
use safetensors::tensor::{Dtype, TensorView};

use crate::error::{CoreError, Result};

/// The key the latents are stored under.
pub const LATENTS_KEY: &str = "latents";

/// Writes `latents` (`[batch, 4, h, w]`) as f32 under the key `latents`, atomically.
///
/// ```no_run
/// # fn demo(latents: burn::tensor::Tensor<4>) -> sd_core::Result<()> {
/// sd_core::pipeline::save_latents(std::path::Path::new("out.safetensors"), latents)?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`CoreError::Io`] naming the file, [`CoreError::ReadBack`] if the tensor cannot be read
/// back from its device, [`CoreError::SafetensorsWrite`] if it cannot be serialised.
pub fn save_latents(path: &Path, latents: Tensor<4>) -> Result<()> {
    let shape = latents.dims().to_vec();
    let values = latents
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|source| CoreError::ReadBack {
            what: "the latents",
            source,
        })?;
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = TensorView::new(Dtype::F32, shape, &bytes).map_err(|source| {
        CoreError::SafetensorsWrite {
            path: path.to_path_buf(),
            source,
        }
    })?;
    let file = safetensors::serialize([(LATENTS_KEY, view)], None).map_err(|source| {
        CoreError::SafetensorsWrite {
            path: path.to_path_buf(),
            source,
        }
    })?;
    Ok(crate::fs::write_atomic(path, &file)?)
}
