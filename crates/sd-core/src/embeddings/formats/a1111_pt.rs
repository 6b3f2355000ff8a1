//! Torch files (`.pt`, `.bin`): A1111's `Embedding.save` dict and diffusers'
//! `learned_embeds.bin`, read through the safe pickle reader of [`sd_torch_file`] and
//! written with its [`TorchWriter`].

use std::path::Path;

use crate::embeddings::{
    detect::{MAX_EMBEDDING_VALUES, RawData, RawTensor, RawValue},
    embedding::Embedding,
    error::{EmbeddingError, Result},
};
use sd_torch_file::{PickleValue, TensorRef, TorchFile, TorchWriter, WriteOptions};

/// The token id A1111 writes in `string_to_token` (`{"*": 265}`, the id of `*` in CLIP's
/// vocabulary).
pub const A1111_STAR_TOKEN: i64 = 265;

fn read_tensor(file: &TorchFile, key: &str, t: &TensorRef) -> Result<RawTensor> {
    let numel = t
        .shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= MAX_EMBEDDING_VALUES)
        .ok_or_else(|| EmbeddingError::Shape {
            path: file.path().to_path_buf(),
            key: key.to_string(),
            shape: t.shape.clone(),
            reason: format!("more than {MAX_EMBEDDING_VALUES} values"),
        })?;
    let data = file.tensor_f32(t)?;
    debug_assert_eq!(data.len(), numel);
    Ok(RawTensor {
        shape: t.shape.clone(),
        data,
        requires_grad: t.requires_grad,
    })
}

/// Decodes the top-level dict of a torch file.
pub(crate) fn read(path: &Path, bytes: Vec<u8>) -> Result<RawData> {
    let file = TorchFile::from_bytes(path, bytes)?;
    let Some(items) = file.root().as_dict() else {
        return Err(EmbeddingError::Layout {
            path: path.to_path_buf(),
            reason: format!("the pickle holds a {}, not a dict", file.root().kind()),
        });
    };
    let mut entries = Vec::with_capacity(items.len());
    for (k, v) in items {
        let key = k.as_str().unwrap_or("<non-string key>").to_string();
        let value = match v {
            PickleValue::Tensor(t) => RawValue::Tensor(read_tensor(&file, &key, t)?),
            PickleValue::Int(i) => RawValue::Int(*i),
            PickleValue::String(s) => RawValue::Str(s.clone()),
            PickleValue::None => RawValue::None,
            other => match other.tensor_entries() {
                Some(tensors) if key == "string_to_param" => RawValue::Tensors(
                    tensors
                        .into_iter()
                        .map(|(name, t)| Ok((name.to_string(), read_tensor(&file, name, t)?)))
                        .collect::<Result<_>>()?,
                ),
                _ => RawValue::Other(other.kind()),
            },
        };
        entries.push((key, value));
    }
    Ok(RawData { entries })
}

fn string_or_none(s: &Option<String>) -> PickleValue {
    s.as_ref()
        .map_or(PickleValue::None, |s| PickleValue::String(s.clone()))
}

fn key(s: &str) -> PickleValue {
    PickleValue::String(s.to_string())
}

fn archive_name(path: &Path) -> WriteOptions {
    // torch names the archive folder after the file stem; any single component works.
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().replace(['/', '\\'], "_"))
        .filter(|s| !s.is_empty() && s != "." && s != "..")
        .unwrap_or_else(|| "archive".into());
    WriteOptions::named(stem)
}

/// The bytes of A1111's `Embedding.save(path)`: `torch.save` of
/// `{"string_to_token": {"*": 265}, "string_to_param": {"*": vec}, "name", "step",
/// "sd_checkpoint", "sd_checkpoint_name"}` with `vec` a plain f32 tensor (not a Parameter)
/// whose `requires_grad` is [`Embedding::requires_grad`].
///
/// # Errors
/// [`EmbeddingError::Write`] for SDXL embeddings (A1111 saves no such `.pt`), torch writer
/// errors.
pub fn write_a1111(path: &Path, e: &Embedding) -> Result<Vec<u8>> {
    e.validate()?;
    if e.clip_g.is_some() {
        return Err(EmbeddingError::Write {
            path: path.to_path_buf(),
            reason: "an SDXL embedding has no A1111 .pt form; write .safetensors".into(),
            source: None,
        });
    }
    let mut w = TorchWriter::new();
    let mut vec = w.add_f32(&[e.vectors.n, e.vectors.dim], &e.vectors.data)?;
    vec.requires_grad = e.requires_grad;
    let root = PickleValue::Dict(vec![
        (
            key("string_to_token"),
            PickleValue::Dict(vec![(key("*"), PickleValue::Int(A1111_STAR_TOKEN))]),
        ),
        (
            key("string_to_param"),
            PickleValue::Dict(vec![(key("*"), PickleValue::Tensor(vec))]),
        ),
        (key("name"), PickleValue::String(e.name.clone())),
        (
            key("step"),
            e.step.map_or(PickleValue::None, PickleValue::Int),
        ),
        (key("sd_checkpoint"), string_or_none(&e.sd_checkpoint)),
        (
            key("sd_checkpoint_name"),
            string_or_none(&e.sd_checkpoint_name),
        ),
    ]);
    Ok(w.finish(&root, &archive_name(path))?)
}

/// The bytes of diffusers' `learned_embeds.bin`: `torch.save({token: tensor [n, dim]})`, the
/// token being the embedding's name (SDXL: `{clip_l, clip_g}`).
///
/// # Errors
/// Torch writer errors.
pub fn write_diffusers_bin(path: &Path, e: &Embedding) -> Result<Vec<u8>> {
    e.validate()?;
    let mut w = TorchWriter::new();
    let mut items = Vec::new();
    let parts: Vec<(&str, &crate::embeddings::Vectors)> = match &e.clip_g {
        Some(g) => vec![("clip_l", &e.vectors), ("clip_g", g)],
        None => vec![(e.name.as_str(), &e.vectors)],
    };
    for (k, v) in parts {
        let t = w.add_f32(&[v.n, v.dim], &v.data)?;
        items.push((key(k), PickleValue::Tensor(t)));
    }
    Ok(w.finish(&PickleValue::Dict(items), &archive_name(path))?)
}
