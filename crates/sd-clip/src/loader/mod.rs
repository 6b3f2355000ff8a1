//! Loading text-encoder weights from a checkpoint.
//!
//! Module fields mirror transformers' state-dict keys, so most keys load by name. Each format
//! has one commented key table ([`diffusers`], [`ldm`]): key renames (fed to burn-store's
//! [`KeyRemapper`]), keys skipped on purpose (with the reason, reported in [`LoadReport`]),
//! and tensors rebuilt from others (OpenCLIP's fused q/k/v). Tensors go through
//! [`FloatCastAdapter`] (fp16/bf16 → f32), then burn-store's `PyTorchToBurnAdapter` with
//! sd-kernels' faster transpose ([`PyTorchLayoutF32`]; linear weights `[out, in]` →
//! `[in, out]`, norm `weight/bias` → `gamma/beta`). Afterwards, a parameter no key provided,
//! or a key (under the text encoder's prefix) that no parameter took, is an error that lists
//! them all.
//!
//! ```no_run
//! use burn::{store::SafetensorsStore, tensor::Device};
//! use sd_clip::{ClipTextConfig, loader::{self, WeightFormat}};
//!
//! let device = Device::default();
//! let mut store = SafetensorsStore::from_file("v1-5-pruned-emaonly.safetensors");
//! let (model, report) = loader::load(&ClipTextConfig::sd15(), &mut store, WeightFormat::Ldm, &device)?;
//! println!("{} tensors loaded, skipped {:?}", report.loaded, report.skipped);
//! # Ok::<(), sd_clip::ClipError>(())
//! ```

pub mod diffusers;
pub mod ldm;

use std::collections::HashMap;

use burn::{
    store::{
        ChainAdapter, FloatCastAdapter, KeyRemapper, ModuleSnapshot, ModuleStore, bridge,
        burn_pack::Tensor as PackTensor,
    },
    tensor::{DType, Device, TensorData},
};
use sd_kernels::PyTorchLayoutF32;

use crate::{
    config::ClipTextConfig,
    error::{ClipError, Result},
    text_model::ClipTextModel,
};

/// The key layout of a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WeightFormat {
    /// A diffusers `text_encoder/model.safetensors` (transformers `CLIPTextModel` keys, with or
    /// without the `text_model.` prefix).
    Diffusers,
    /// A single-file (LDM / A1111) checkpoint: `cond_stage_model.transformer.text_model.*`
    /// (SD 1.x, OpenAI CLIP) or `cond_stage_model.model.*` (SD 2.x, OpenCLIP), told apart by
    /// the keys. Keys of the other networks in the file are not looked at.
    Ldm,
}

/// What a successful load did.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Parameters loaded.
    pub loaded: usize,
    /// Keys of the file deliberately not loaded, each with the reason (from the format's
    /// key table).
    pub skipped: Vec<(String, &'static str)>,
}

/// One row of a key table: a tensor the file has that the model does not want.
pub(crate) struct Skip {
    /// Whether a (renamed) key is this one.
    pub matches: fn(&str, &ClipTextConfig) -> bool,
    /// Why it is skipped.
    pub reason: &'static str,
}

/// A format's key table, after its prefix has been chosen.
pub(crate) struct KeyTable {
    /// Keys outside this prefix belong to other networks and are not looked at.
    pub prefix: &'static str,
    /// `(regex, replacement)` renames, applied in order to every key (see each table).
    pub renames: &'static [(&'static str, &'static str)],
    /// Renamed keys that are deliberately not loaded.
    pub skips: &'static [Skip],
    /// Whether `*.self_attn.in_proj.{weight,bias}` (OpenCLIP's fused q/k/v) are split.
    pub split_in_proj: bool,
}

/// Loads a text encoder of shape `config` from `store` (a `SafetensorsStore`, or any burn
/// store) in the given layout, onto `device`, as f32.
///
/// # Errors
/// [`ClipError::Config`] for a config [`ClipTextConfig::validate`] refuses (checked before
/// anything is read or allocated); [`ClipError::Store`] when the store cannot be read;
/// [`ClipError::Weights`] listing every missing and unused key and every shape mismatch;
/// [`ClipError::BadShape`] for a fused tensor that cannot be split.
pub fn load<S>(
    config: &ClipTextConfig,
    store: &mut S,
    format: WeightFormat,
    device: &Device,
) -> Result<(ClipTextModel, LoadReport)>
where
    S: ModuleStore,
    S::Error: std::error::Error + Send + Sync + 'static,
{
    config.validate()?;
    let all = store
        .get_all_tensors()
        .map_err(|e| ClipError::Store(Box::new(e)))?;
    let table = match format {
        WeightFormat::Diffusers => diffusers::table(),
        WeightFormat::Ldm => ldm::table(all.keys().map(String::as_str))?,
    };
    let tensors: Vec<PackTensor> = all
        .iter()
        .filter(|(key, _)| key.starts_with(table.prefix))
        .map(|(_, tensor)| tensor.clone())
        .collect();
    let mut model = config.init(device);
    let report = apply(&mut model, tensors, &table, config, format)?;
    Ok((model, report))
}

/// Rows of the text encoder's token-embedding table in a checkpoint of any supported layout
/// (its vocabulary size), read from the file's header without loading the weights.
///
/// # Errors
/// [`ClipError::Store`] when the store cannot be read; [`ClipError::NoTokenEmbedding`] when it
/// holds no token-embedding table.
pub fn token_embedding_rows<S>(store: &mut S) -> Result<usize>
where
    S: ModuleStore,
    S::Error: std::error::Error + Send + Sync + 'static,
{
    const KEYS: [&str; 4] = [
        "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
        "cond_stage_model.model.token_embedding.weight",
        "text_model.embeddings.token_embedding.weight",
        "embeddings.token_embedding.weight",
    ];
    let all = store
        .get_all_tensors()
        .map_err(|e| ClipError::Store(Box::new(e)))?;
    KEYS.iter()
        .find_map(|key| all.get(*key))
        .and_then(|t| t.shape.to_vec().first().copied())
        .ok_or_else(|| ClipError::NoTokenEmbedding {
            looked_for: KEYS.iter().map(|k| (*k).to_owned()).collect(),
        })
}

fn apply(
    model: &mut ClipTextModel,
    tensors: Vec<PackTensor>,
    table: &KeyTable,
    config: &ClipTextConfig,
    format: WeightFormat,
) -> Result<LoadReport> {
    let remapper =
        KeyRemapper::from_patterns(table.renames.to_vec()).map_err(ClipError::KeyTable)?;
    let (renamed, names) = remapper.remap(tensors);
    // Model path → file key, for messages; split q/k/v pieces map to their fused key.
    let mut original: HashMap<String, String> = names.into_iter().collect();

    let mut report = LoadReport::default();
    let mut keep = Vec::with_capacity(renamed.len());
    for tensor in renamed {
        if let Some(skip) = table
            .skips
            .iter()
            .find(|s| (s.matches)(&tensor.name, config))
        {
            report
                .skipped
                .push((original_of(&original, &tensor.name), skip.reason));
        } else if table.split_in_proj && tensor.name.contains(".self_attn.in_proj.") {
            let key = original_of(&original, &tensor.name);
            let pieces = split_qkv(tensor, &key, config.hidden_size)?;
            for piece in &pieces {
                original.insert(piece.name.clone(), key.clone());
            }
            keep.extend(pieces);
        } else {
            keep.push(tensor);
        }
    }
    report.skipped.sort();

    // Cast first, so the linear-weight transpose runs on f32 (see `sd_kernels::pytorch_layout`).
    let adapter = ChainAdapter::new(FloatCastAdapter::to(DType::F32), PyTorchLayoutF32);
    let result = model.apply(keep, None, Some(Box::new(adapter)), false);
    if !result.missing.is_empty() || !result.unused.is_empty() || !result.errors.is_empty() {
        return Err(ClipError::Weights {
            format: format!("{format:?}"),
            missing: result.missing.into_iter().map(|(path, _)| path).collect(),
            unused: {
                let mut unused: Vec<String> = result
                    .unused
                    .iter()
                    .map(|n| original_of(&original, n))
                    .collect();
                unused.sort();
                unused.dedup();
                unused
            },
            errors: result.errors,
        });
    }
    report.loaded = result.applied.len();
    tracing::debug!(
        loaded = report.loaded,
        skipped = report.skipped.len(),
        "text encoder loaded"
    );
    Ok(report)
}

fn original_of(original: &HashMap<String, String>, name: &str) -> String {
    original
        .get(name)
        .cloned()
        .unwrap_or_else(|| name.to_owned())
}

/// Splits OpenCLIP's fused `in_proj_{weight,bias}` (`[3·hidden, hidden]` / `[3·hidden]`,
/// q then k then v along the first axis, as `torch.nn.MultiheadAttention` stores them) into
/// `q_proj`, `k_proj`, `v_proj`. The pieces stay lazy: each reads its third of the bytes when
/// loaded.
fn split_qkv(tensor: PackTensor, key: &str, hidden: usize) -> Result<Vec<PackTensor>> {
    let shape = tensor.shape.to_vec();
    let (is_weight, piece_shape) = match shape.as_slice() {
        [rows, cols] if *rows == 3 * hidden && *cols == hidden => (true, vec![hidden, hidden]),
        [rows] if *rows == 3 * hidden => (false, vec![hidden]),
        _ => {
            return Err(ClipError::BadShape {
                key: key.to_owned(),
                shape,
                expected: format!("[{}, {hidden}] or [{}]", 3 * hidden, 3 * hidden),
            });
        }
    };
    let prefix = tensor
        .name
        .trim_end_matches(if is_weight {
            "in_proj.weight"
        } else {
            "in_proj.bias"
        })
        .to_owned();
    let param = if is_weight { "weight" } else { "bias" };
    let dtype = tensor.dtype;
    Ok(["q_proj", "k_proj", "v_proj"]
        .iter()
        .enumerate()
        .map(|(i, proj)| {
            let piece_shape = piece_shape.clone();
            bridge::map_data(
                tensor.clone(),
                format!("{prefix}{proj}.{param}"),
                dtype,
                burn::tensor::Shape::from(piece_shape.clone()),
                move |data: TensorData| {
                    // Row-major, so the i-th third along axis 0 is the i-th third of the bytes.
                    let bytes = data.as_bytes();
                    let third = bytes.len() / 3;
                    TensorData::from_bytes_vec(
                        bytes[i * third..(i + 1) * third].to_vec(),
                        piece_shape.clone(),
                        dtype,
                    )
                },
            )
        })
        .collect())
}

/// Whether `name` is a parameter of encoder layer `index` or later.
pub(crate) fn layer_at_or_after(name: &str, index: usize) -> bool {
    name.strip_prefix("encoder.layers.")
        .and_then(|rest| rest.split('.').next())
        .and_then(|i| i.parse::<usize>().ok())
        .is_some_and(|i| i >= index)
}
