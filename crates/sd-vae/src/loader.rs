//! Loading weights: diffusers folders and LDM single files (and standalone `.vae` files).
//!
//! Module fields are named after diffusers' state-dict keys, so a diffusers
//! `vae/diffusion_pytorch_model.safetensors` needs (almost) no renames. LDM files (the
//! `first_stage_model.*` keys of an A1111 checkpoint, or the same keys without the prefix in
//! a standalone VAE that A1111 users swap in) go through [`ldm_key_table`]. The mapping is the
//! inverse of `tools/sdtools/ldm_keys.py::vae_to_ldm`, which was checked against diffusers'
//! own `from_single_file` loader.
//!
//! Loading takes any burn-store [`ModuleStore`] the caller opens (a file, bytes, with their
//! own filters), renames keys, turns LDM's 1x1-conv attention weights into linear ones, casts
//! float16/bfloat16 to float32 with [`FloatCastAdapter`], and lets burn-store's
//! `PyTorchToBurnAdapter`, with sd-kernels' faster transpose ([`PyTorchLayoutF32`]),
//! transpose linear weights and rename norm parameters. Any VAE tensor left over and any
//! parameter left without a tensor is an error that names them.

use std::collections::BTreeMap;
use std::fmt;

use burn::module::Module;
use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{FloatCastAdapter, KeyRemapper, ModuleAdapter, ModuleSnapshot, ModuleStore};
use burn::tensor::{DType, Device, Shape};
use sd_kernels::PyTorchLayoutF32;

use crate::{AutoencoderKl, AutoencoderKlConfig, Result, VaeError};

/// The key prefix of the VAE inside an LDM single-file checkpoint.
pub const LDM_PREFIX: &str = "first_stage_model.";

/// The top-level names of the VAE's tensors, in both layouts.
const VAE_ROOTS: [&str; 4] = ["encoder.", "decoder.", "quant_conv.", "post_quant_conv."];

/// How the tensors of a VAE are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WeightFormat {
    /// diffusers' layout (`vae/diffusion_pytorch_model.safetensors`):
    /// `encoder.down_blocks.0.resnets.0.conv1.weight`, ...
    Diffusers,
    /// The original LDM layout: `first_stage_model.encoder.down.0.block.0.conv1.weight` in a
    /// single-file checkpoint, or the same keys without `first_stage_model.` in a standalone
    /// VAE file (`*.vae.safetensors`). Either is accepted.
    Ldm,
}

impl fmt::Display for WeightFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Diffusers => "diffusers",
            Self::Ldm => "LDM",
        })
    }
}

impl WeightFormat {
    /// Guesses the layout from tensor names: LDM's `.mid.block_1.` / `first_stage_model.`
    /// or diffusers' `.mid_block.`; `None` when neither appears.
    pub fn detect<'a>(keys: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        keys.into_iter().find_map(|key| {
            if key.starts_with(LDM_PREFIX) || key.contains(".mid.block_1.") {
                Some(Self::Ldm)
            } else if key.contains(".mid_block.") {
                Some(Self::Diffusers)
            } else {
                None
            }
        })
    }
}

/// Renames of diffusers files: none are needed for files written by diffusers >= 0.14.
///
/// Older diffusers files (SD 1.5's own `vae/` folder among them) name the mid-block attention
/// as the deprecated `AttentionBlock` did; diffusers renames them on load
/// (`_convert_deprecated_attention_blocks`), and so do we.
pub fn diffusers_key_table() -> Vec<(String, String)> {
    let attention = r"^(encoder|decoder)\.mid_block\.attentions\.0\.";
    [
        ("query", "to_q"),
        ("key", "to_k"),
        ("value", "to_v"),
        ("proj_attn", "to_out.0"),
    ]
    .into_iter()
    .map(|(old, new)| {
        (
            format!(r"{attention}{old}\."),
            format!("${{1}}.mid_block.attentions.0.{new}."),
        )
    })
    .collect()
}

/// Renames from LDM keys (prefix already removed) to diffusers keys, for a VAE with `levels`
/// levels. Each pattern is anchored and its output matches no later pattern, so applying all
/// rows in order renames each key once.
pub fn ldm_key_table(levels: usize) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = vec![
        // The final norm: LDM `norm_out`, diffusers `conv_norm_out`.
        (
            r"^(encoder|decoder)\.norm_out\.".into(),
            "${1}.conv_norm_out.".into(),
        ),
        // Encoder levels run the same way in both: `down.{i}.block.{j}` is
        // `down_blocks.{i}.resnets.{j}`.
        (
            r"^encoder\.down\.(\d+)\.block\.(\d+)\.".into(),
            "encoder.down_blocks.${1}.resnets.${2}.".into(),
        ),
        (
            r"^encoder\.down\.(\d+)\.downsample\.conv\.".into(),
            "encoder.down_blocks.${1}.downsamplers.0.conv.".into(),
        ),
        // The mid block: `block_1`, `attn_1`, `block_2` are resnets 0, attention 0, resnet 1.
        (
            r"^(encoder|decoder)\.mid\.block_1\.".into(),
            "${1}.mid_block.resnets.0.".into(),
        ),
        (
            r"^(encoder|decoder)\.mid\.block_2\.".into(),
            "${1}.mid_block.resnets.1.".into(),
        ),
    ];
    // Attention projections; LDM stores them as 1x1 convs (reshaped by `squeeze_1x1`).
    for (old, new) in [
        ("norm", "group_norm"),
        ("q", "to_q"),
        ("k", "to_k"),
        ("v", "to_v"),
        ("proj_out", "to_out.0"),
    ] {
        rows.push((
            format!(r"^(encoder|decoder)\.mid\.attn_1\.{old}\."),
            format!("${{1}}.mid_block.attentions.0.{new}."),
        ));
    }
    // Decoder levels are numbered from the image side in LDM (`up.0` is full resolution)
    // and from the latent side in diffusers (`up_blocks.0` follows the mid block):
    // `up.{l}` is `up_blocks.{levels - 1 - l}`. One row per level, since a regex cannot
    // subtract.
    for level in 0..levels {
        let block = levels - 1 - level;
        rows.push((
            format!(r"^decoder\.up\.{level}\.block\.(\d+)\."),
            format!("decoder.up_blocks.{block}.resnets.${{1}}."),
        ));
        rows.push((
            format!(r"^decoder\.up\.{level}\.upsample\.conv\."),
            format!("decoder.up_blocks.{block}.upsamplers.0.conv."),
        ));
    }
    // The resnets' 1x1 skip projection: LDM `nin_shortcut`, diffusers `conv_shortcut`.
    rows.push((r"\.nin_shortcut\.".into(), ".conv_shortcut.".into()));
    rows
}

impl AutoencoderKl {
    /// Builds the network `config` describes on `device` and loads its weights from `store`.
    ///
    /// ```no_run
    /// use burn::store::SafetensorsStore;
    /// use sd_vae::{AutoencoderKl, AutoencoderKlConfig, WeightFormat};
    ///
    /// let device = burn::tensor::Device::default();
    /// let config = AutoencoderKlConfig::from_json_file("sd15/vae/config.json")?;
    /// let mut store = SafetensorsStore::from_file("sd15/vae/diffusion_pytorch_model.safetensors");
    /// let vae = AutoencoderKl::load(&config, &mut store, WeightFormat::Diffusers, &device)?;
    /// # Ok::<(), sd_vae::VaeError>(())
    /// ```
    pub fn load<S>(
        config: &AutoencoderKlConfig,
        store: &mut S,
        format: WeightFormat,
        device: &Device,
    ) -> Result<Self>
    where
        S: ModuleStore,
        S::Error: std::error::Error + Send + Sync + 'static,
    {
        let mut vae = config.init(device)?;
        vae.load_weights(store, format)?;
        Ok(vae)
    }

    /// Loads weights into an existing network, replacing all of its parameters.
    pub fn load_weights<S>(&mut self, store: &mut S, format: WeightFormat) -> Result<()>
    where
        S: ModuleStore,
        S::Error: std::error::Error + Send + Sync + 'static,
    {
        // LDM numbers decoder levels from the image side, so the renames depend on the count.
        let levels = self.decoder.up_blocks.len();
        let all = store
            .get_all_tensors()
            .map_err(|e| VaeError::Store(Box::new(e)))?;
        // A single file prefixes the VAE with `first_stage_model.`; a standalone LDM VAE and a
        // diffusers file do not.
        let prefix = match format {
            WeightFormat::Ldm if all.keys().any(|k| k.starts_with(LDM_PREFIX)) => LDM_PREFIX,
            _ => "",
        };
        let tensors = component(all, prefix);
        let table = match format {
            WeightFormat::Diffusers => diffusers_key_table(),
            WeightFormat::Ldm => ldm_key_table(levels),
        };
        if tensors.is_empty() {
            return Err(VaeError::NoVaeTensors {
                format,
                looked_for: match format {
                    WeightFormat::Diffusers => "encoder., decoder., quant_conv., post_quant_conv.",
                    WeightFormat::Ldm => {
                        "first_stage_model.{encoder,decoder,quant_conv,post_quant_conv}. with or without the prefix"
                    }
                },
            });
        }

        let remapper = KeyRemapper::from_patterns(table).map_err(VaeError::KeyTable)?;
        let (tensors, names) = remapper.remap(tensors);
        // diffusers name -> the key as the file spells it, to report unused keys in the
        // user's terms.
        let original: BTreeMap<String, String> = names.into_iter().collect();
        let tensors = tensors.into_iter().map(squeeze_1x1).collect();

        // Cast first, so the linear-weight transpose runs on f32 (see
        // `sd_kernels::pytorch_layout`).
        let adapter: Box<dyn ModuleAdapter> =
            Box::new(FloatCastAdapter::to(DType::F32).chain(PyTorchLayoutF32));
        let result = self.apply(tensors, None, Some(adapter), false);

        if result.missing.is_empty() && result.unused.is_empty() && result.errors.is_empty() {
            return Ok(());
        }
        let unused = result
            .unused
            .iter()
            .map(|name| {
                let file_key = original.get(name).map_or(name.as_str(), String::as_str);
                format!("{prefix}{file_key}")
            })
            .collect();
        Err(VaeError::WeightMismatch {
            format,
            missing: result.missing.into_iter().map(|(path, _)| path).collect(),
            unused,
            errors: result.errors,
        })
    }

    /// The number of parameters (for logs and sanity checks).
    pub fn num_parameters(&self) -> usize {
        self.num_params()
    }
}

/// The VAE's tensors: keys under `prefix` whose remainder starts with a VAE root, renamed to
/// that remainder. Everything else (the UNet's and text encoder's keys in a single file, an
/// EMA counter or a training loss in a standalone VAE) belongs to something else.
fn component(all: &BTreeMap<String, PackTensor>, prefix: &str) -> Vec<PackTensor> {
    all.iter()
        .filter_map(|(key, tensor)| {
            let rest = key.strip_prefix(prefix)?;
            VAE_ROOTS
                .iter()
                .any(|root| rest.starts_with(root))
                .then(|| {
                    let mut tensor = tensor.clone();
                    tensor.name = rest.to_owned();
                    tensor
                })
        })
        .collect()
}

/// LDM attention projections are 1x1 convolutions, `[out, in, 1, 1]`; the same bytes are the
/// linear weight `[out, in]`. Files that already hold `[out, in]` (old conversions) pass
/// through, as does every tensor that is not an attention projection weight.
fn squeeze_1x1(tensor: PackTensor) -> PackTensor {
    let is_projection = tensor.name.contains(".mid_block.attentions.")
        && tensor.name.ends_with(".weight")
        && !tensor.name.contains(".group_norm.");
    let dims = tensor.shape.as_slice();
    if !(is_projection && dims.len() == 4 && dims[2] == 1 && dims[3] == 1) {
        return tensor;
    }
    let shape = Shape::new([dims[0], dims[1]]);
    let (name, dtype, param_id, len) = (
        tensor.name.clone(),
        tensor.dtype,
        tensor.param_id,
        tensor.byte_len(),
    );
    PackTensor::deferred(name, dtype, shape, param_id, len, move || tensor.to_bytes())
}
