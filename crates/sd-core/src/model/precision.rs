//! The type the frozen networks compute in: f32 (the default, every golden's), or f16 / bf16
//! on a GPU, as A1111 runs its models in half precision unless `--no-half`.

use std::{fmt, str::FromStr};

use burn::tensor::{DType, FloatDType};
use sd_kernels::precision::cast_params;

use super::StableDiffusion;
use crate::error::{CoreError, Result};

/// The type a model's weights hold and its networks compute in.
///
/// Half precision halves the weights' memory and, on GPUs with half-precision units, the
/// time; the results differ from f32's by half precision's rounding (about 1e-3 relative).
/// The networks' inputs and outputs stay f32 (each casts at its edges), the noise, the
/// sampler's arithmetic and a trained embedding too; GroupNorm and LayerNorm take their
/// statistics in f32 (burn widens f16 there, as PyTorch's kernels do).
///
/// ```
/// use sd_core::model::Precision;
///
/// let precision: Precision = "f16".parse()?;
/// assert_eq!(precision, Precision::F16);
/// assert_eq!(precision.to_string(), "f16");
/// # Ok::<(), sd_core::CoreError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Single precision: the reference results. The default.
    #[default]
    F32,
    /// IEEE half precision (A1111's default on GPUs, diffusers' `torch.float16`). Its range
    /// ends at 65504, so training scales its loss (see the trainer's docs).
    F16,
    /// bfloat16: f32's range, 8 bits of mantissa.
    Bf16,
}

impl Precision {
    /// Every name [`FromStr`] accepts.
    pub const NAMES: [&'static str; 3] = ["f32", "f16", "bf16"];

    /// burn's float type for this precision.
    pub fn dtype(self) -> FloatDType {
        match self {
            Self::F32 => FloatDType::F32,
            Self::F16 => FloatDType::F16,
            Self::Bf16 => FloatDType::BF16,
        }
    }

    /// The precision of weights of `dtype` (f32 for any type that is not f16 or bf16).
    pub fn of(dtype: DType) -> Self {
        match dtype {
            DType::F16 => Self::F16,
            DType::BF16 => Self::Bf16,
            _ => Self::F32,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
        })
    }
}

impl FromStr for Precision {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Ok(Self::F32),
            "f16" | "fp16" | "float16" | "half" => Ok(Self::F16),
            "bf16" | "bfloat16" => Ok(Self::Bf16),
            _ => Err(CoreError::InvalidRequest {
                name: "precision",
                reason: format!("`{s}`: expected one of {}", Self::NAMES.join(", ")),
            }),
        }
    }
}

impl StableDiffusion {
    /// The model with its text encoder, UNet and VAE computing in `precision` (the weights
    /// cast on the device; a cast back to f32 does not restore the bits lost on the way
    /// down, so keep an f32 model for f32 work).
    ///
    /// ```
    /// use sd_core::model::Precision;
    ///
    /// let dir = std::env::temp_dir().join("sd-core-doctest-precision");
    /// let path = sd_core::bundled::TINY_SD1_CONCEPT.extract_to(&dir)?;
    /// let device = sd_core::DeviceChoice::Cpu.device()?;
    /// let model = sd_core::StableDiffusion::load(path, &device)?.with_precision(Precision::Bf16)?;
    /// assert_eq!(model.precision(), Precision::Bf16);
    /// # Ok::<(), sd_core::CoreError>(())
    /// ```
    ///
    /// # Errors
    /// [`CoreError::UnsupportedPrecision`] when the device cannot compute in it (a GPU
    /// without half-precision shaders, say); the model is dropped then.
    pub fn with_precision(mut self, precision: Precision) -> Result<Self> {
        if precision == self.precision() {
            return Ok(self);
        }
        let dtype = precision.dtype();
        if !self.device().supports_dtype(dtype) {
            return Err(CoreError::UnsupportedPrecision {
                precision,
                device: format!("{:?}", self.device()),
            });
        }
        self.text_encoder = cast_params(self.text_encoder, dtype);
        self.unet = cast_params(self.unet, dtype);
        self.vae = cast_params(self.vae, dtype);
        Ok(self)
    }

    /// The precision the networks compute in (the UNet's;
    /// [`with_precision`](Self::with_precision) sets all three).
    pub fn precision(&self) -> Precision {
        Precision::of(self.unet.dtype())
    }
}
