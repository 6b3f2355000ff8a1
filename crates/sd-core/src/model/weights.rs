//! Opening a weights file as a burn store, whatever its container.

use std::path::{Path, PathBuf};

use super::architecture::TensorShapes;
use super::f32_store::F32WeightStore;
use crate::checkpoint::SafetensorsHeader;
use crate::error::{CoreError, Result};
use crate::limits::Limits;

/// An opened weights file: the store the network loaders read, and every tensor's shape.
pub(crate) struct WeightsFile {
    /// The file.
    pub path: PathBuf,
    /// The tensors, read on demand, floats as f32.
    pub store: F32WeightStore,
    /// Name → shape of every tensor.
    pub shapes: TensorShapes,
}

/// Whether `path` names a PyTorch pickle container (`.ckpt`, `.pt`, `.pth`, `.bin`).
pub(crate) fn is_torch_file(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        matches!(
            e.to_ascii_lowercase().as_str(),
            "ckpt" | "pt" | "pth" | "bin"
        )
    })
}

/// Opens `.safetensors` lazily; a PyTorch file is read as data (never executed) and its
/// tensors, with their original dtypes, held as an in-memory safetensors image.
/// Tensors over `limits` are refused before any is read.
pub(crate) fn open(path: &Path, limits: &Limits) -> Result<WeightsFile> {
    if is_torch_file(path) {
        return open_torch(path, limits);
    }
    let header = SafetensorsHeader::read_with_limits(path, limits)?;
    let store = F32WeightStore::from_header(&header)?;
    Ok(safetensors_weights(path, header, store))
}

/// The opened safetensors `store` with the shapes its `header` lists.
fn safetensors_weights(
    path: &Path,
    header: SafetensorsHeader,
    store: F32WeightStore,
) -> WeightsFile {
    let shapes = header
        .tensors
        .into_iter()
        .map(|(name, info)| (name, info.shape))
        .collect();
    WeightsFile {
        path: path.to_owned(),
        store,
        shapes,
    }
}

/// [`open`] for a file held in memory (`path` names it, and its extension picks the
/// container, as for a file).
pub(crate) fn open_bytes(path: &Path, bytes: Vec<u8>, limits: &Limits) -> Result<WeightsFile> {
    if is_torch_file(path) {
        let file = sd_torch_file::TorchFile::from_bytes_with_limits(path, bytes, limits)?;
        return torch_weights(path, file);
    }
    let header = SafetensorsHeader::from_image(path, &bytes)?;
    header.check_limits(limits)?;
    let store = F32WeightStore::from_image(path, bytes)?;
    Ok(safetensors_weights(path, header, store))
}

fn open_torch(path: &Path, limits: &Limits) -> Result<WeightsFile> {
    let file = sd_torch_file::TorchFile::open_with_limits(path, limits)?;
    torch_weights(path, file)
}

/// The tensors of an opened torch file, as an in-memory safetensors image.
fn torch_weights(path: &Path, file: sd_torch_file::TorchFile) -> Result<WeightsFile> {
    let tensors = file.state_dict()?;
    let shapes = tensors
        .iter()
        .map(|(name, tensor)| (name.clone(), tensor.shape.clone()))
        .collect();
    // The store reads safetensors: the tensors, in their stored dtypes, are copied once into
    // an in-memory image of one, and made f32 as each network loads them.
    let bytes = file.to_safetensors(&tensors)?;
    Ok(WeightsFile {
        path: path.to_owned(),
        store: F32WeightStore::from_image(path, bytes)?,
        shapes,
    })
}

/// The weights file of a diffusers component folder (`unet/`, `vae/`, `text_encoder/`):
/// full precision before fp16 variants, safetensors before PyTorch files.
pub(crate) fn component_file(folder: &Path, component: &str) -> Result<PathBuf> {
    let dir = folder.join(component);
    let stems = match component {
        "text_encoder" => ["model", "pytorch_model"],
        _ => ["diffusion_pytorch_model", "diffusion_pytorch_model"],
    };
    let candidates = [
        format!("{}.safetensors", stems[0]),
        format!("{}.fp16.safetensors", stems[0]),
        format!("{}.bin", stems[1]),
        format!("{}.fp16.bin", stems[1]),
    ];
    candidates
        .iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| CoreError::UnrecognisedCheckpoint {
            path: dir.clone(),
            reason: format!("no weights file (looked for {})", candidates.join(", ")),
            source: None,
        })
}
