//! Loading UNet weights from a diffusers folder's `unet/diffusion_pytorch_model.safetensors`
//! or from a single-file (LDM / A1111) checkpoint, fp16, bf16 or fp32.
//!
//! The caller hands in any burn-store [`ModuleStore`] — usually
//! `SafetensorsStore::from_file(path)` — and says which key layout it holds. One key table
//! per format ([`diffusers::KEY_TABLE`], [`ldm::key_table`]) renames the file's keys to the
//! model's paths through burn-store's [`KeyRemapper`]; [`FloatCastAdapter`] makes every
//! tensor f32, then burn-store's `PyTorchToBurnAdapter` (with sd-kernels' faster transpose,
//! [`PyTorchLayoutF32`]) transposes linear weights and renames norm parameters.
//! A tensor the model lacks or does not use is an error that names it.

pub mod diffusers;
pub mod ldm;

use std::collections::HashMap;
use std::fmt;

use burn::store::{
    ChainAdapter, FloatCastAdapter, KeyRemapper, ModuleAdapter, ModuleContext, ModuleSnapshot,
    ModuleStore, bridge, burn_pack,
};
use burn::tensor::{DType, Device, Shape, TensorData};
use sd_kernels::PyTorchLayoutF32;

use crate::config::UNetConfig;
use crate::error::UNetError;
use crate::unet_2d_condition::UNet2DConditionModel;

/// The key layout of a weight file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightFormat {
    /// diffusers' `unet/diffusion_pytorch_model.safetensors` (`down_blocks.0.resnets.0...`).
    Diffusers,
    /// A single-file checkpoint: the UNet's keys are `model.diffusion_model.*` (LDM names);
    /// other keys (text encoder, VAE) are ignored.
    Ldm,
}

impl fmt::Display for WeightFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Diffusers => "diffusers",
            Self::Ldm => "LDM single-file",
        })
    }
}

impl UNet2DConditionModel {
    /// Builds the model `config` describes and loads its weights from `store`.
    ///
    /// ```no_run
    /// use burn::store::SafetensorsStore;
    /// use sd_unet::{UNet2DConditionModel, UNetConfig, WeightFormat};
    ///
    /// let device = burn::tensor::Device::default();
    /// let mut store = SafetensorsStore::from_file("v1-5-pruned-emaonly.safetensors");
    /// let unet = UNet2DConditionModel::load(&UNetConfig::sd15(), &mut store, WeightFormat::Ldm, &device)?;
    /// # Ok::<(), sd_unet::UNetError>(())
    /// ```
    pub fn load<S>(
        config: &UNetConfig,
        store: &mut S,
        format: WeightFormat,
        device: &Device,
    ) -> Result<Self, UNetError>
    where
        S: ModuleStore,
        S::Error: std::error::Error + Send + Sync + 'static,
    {
        let mut model = config.init(device)?;
        model.load_weights(config, store, format)?;
        Ok(model)
    }

    /// Replaces every weight of the model with the store's; `config` must be the one the
    /// model was built from (the LDM key table depends on it).
    pub fn load_weights<S>(
        &mut self,
        config: &UNetConfig,
        store: &mut S,
        format: WeightFormat,
    ) -> Result<(), UNetError>
    where
        S: ModuleStore,
        S::Error: std::error::Error + Send + Sync + 'static,
    {
        let rows: Vec<(String, String)> = match format {
            WeightFormat::Diffusers => Vec::new(),
            WeightFormat::Ldm => ldm::key_table(config),
        };
        let rows = rows.into_iter().chain(
            diffusers::KEY_TABLE
                .iter()
                .map(|(from, to)| (from.to_string(), to.to_string())),
        );
        let remapper = KeyRemapper::from_pattern_iter(rows).map_err(UNetError::KeyTable)?;

        let tensors: Vec<burn_pack::Tensor> = store
            .get_all_tensors()
            .map_err(|e| UNetError::Store(Box::new(e)))?
            .iter()
            .filter(|(name, _)| format == WeightFormat::Diffusers || name.starts_with(ldm::PREFIX))
            .map(|(_, tensor)| tensor.clone())
            .collect();
        let (tensors, renames) = remapper.remap(tensors);
        let file_key: HashMap<String, String> = renames.into_iter().collect();

        // Cast first, so the linear-weight transpose runs on f32 (see
        // `sd_kernels::pytorch_layout`).
        let adapter = ChainAdapter::new(ProjectionLayout, FloatCastAdapter::to(DType::F32))
            .chain(PyTorchLayoutF32);
        // `skip_enum_variants`: `proj_in` is an enum (conv or linear) stored without the
        // variant name.
        let result = self.apply(tensors, None, Some(Box::new(adapter)), true);

        if !result.errors.is_empty() {
            return Err(UNetError::Tensors {
                format,
                errors: result.errors,
            });
        }
        if !result.unused.is_empty() {
            let mut keys: Vec<String> = result
                .unused
                .iter()
                .map(|k| file_key.get(k).cloned().unwrap_or_else(|| k.clone()))
                .collect();
            keys.sort();
            return Err(UNetError::UnusedKeys { format, keys });
        }
        if !result.missing.is_empty() {
            let mut keys: Vec<String> = result
                .missing
                .iter()
                .map(|(path, _)| diffusers_name(path))
                .collect();
            keys.sort();
            return Err(UNetError::MissingKeys { format, keys });
        }
        Ok(())
    }
}

/// The input channels of a checkpoint's UNet (4, or 9 for inpainting models), read from the
/// shape of its `conv_in` weight; `None` when the store has no such tensor.
pub fn conv_in_channels<S>(store: &mut S, format: WeightFormat) -> Result<Option<usize>, UNetError>
where
    S: ModuleStore,
    S::Error: std::error::Error + Send + Sync + 'static,
{
    let key = match format {
        WeightFormat::Diffusers => "conv_in.weight".to_string(),
        WeightFormat::Ldm => format!("{}input_blocks.0.0.weight", ldm::PREFIX),
    };
    let tensor = store
        .get_tensor(&key)
        .map_err(|e| UNetError::Store(Box::new(e)))?;
    Ok(tensor.and_then(|t| (t.shape.len() == 4).then(|| t.shape[1])))
}

/// A model path as diffusers names it (burn calls norm parameters gamma/beta and drops the
/// `ModuleList` indices the key table removed): what a diffusers state dict, a PEFT or a
/// kohya LoRA calls the parameter.
///
/// ```
/// use sd_unet::loader::diffusers_name;
///
/// let ours = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.weight";
/// assert_eq!(
///     diffusers_name(ours),
///     "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0.weight"
/// );
/// ```
pub fn diffusers_name(path: &str) -> String {
    let path = path
        .replace(".to_out.", ".to_out.0.")
        .replace(".ff.net_0.", ".ff.net.0.")
        .replace(".ff.net_2.", ".ff.net.2.");
    match path.rsplit_once('.') {
        Some((module, "gamma")) => format!("{module}.weight"),
        Some((module, "beta")) => format!("{module}.bias"),
        _ => path,
    }
}

/// Lets a `proj_in`/`proj_out` load whichever way the checkpoint stores it: a 1×1
/// convolution weight `[out, in, 1, 1]` for a linear layer, or a linear weight `[out, in]`
/// for a 1×1 convolution. diffusers' converter accepts both too, since some SD 2.x exports
/// keep conv-shaped projections with `use_linear_projection`.
#[derive(Debug, Clone, Copy)]
struct ProjectionLayout;

impl ModuleAdapter for ProjectionLayout {
    fn adapt(&self, tensor: burn_pack::Tensor, ctx: ModuleContext<'_>) -> burn_pack::Tensor {
        let is_weight = tensor.name.ends_with(".weight");
        let dims: Vec<usize> = tensor.shape.iter().copied().collect();
        let target = match (ctx.module_type(), dims.as_slice()) {
            (Some("Struct:Linear"), [out, inp, 1, 1]) if is_weight => vec![*out, *inp],
            (Some("Struct:Conv2d"), [out, inp]) if is_weight => vec![*out, *inp, 1, 1],
            _ => return tensor,
        };
        let name = tensor.name.clone();
        let dtype = tensor.dtype;
        let shape = Shape::from(target.clone());
        bridge::map_data(tensor, name, dtype, shape, move |data: TensorData| {
            let dtype = data.dtype();
            TensorData::from_bytes(data.into_bytes(), target.clone(), dtype)
        })
    }

    fn clone_box(&self) -> Box<dyn ModuleAdapter> {
        Box::new(*self)
    }
}
