//! Caps on how much a user's file, picture or prompt may make this crate allocate or compute,
//! in one place, with defaults that refuse only hostile or broken input.
//!
//! | cap | default | why this number |
//! |---|---|---|
//! | [`Limits::max_tensor_bytes`] | 4 GiB ([`DEFAULT_MAX_TENSOR_BYTES`]) | the largest tensor of any Stable Diffusion checkpoint is SDXL's OpenCLIP-G token embedding, 49408 × 1280 values (253 MB in f32); whole SD 1.x checkpoints are 2–8 GB. 4 GiB is 16× the largest real tensor and still far below what a header can claim (2^60 bytes). |
//! | [`Limits::max_image_pixels`] | 178 956 970 ([`DEFAULT_MAX_IMAGE_PIXELS`]) | Pillow's `DecompressionBombError` threshold, `2 · Image.MAX_IMAGE_PIXELS` (`MAX_IMAGE_PIXELS = 1024 * 1024 * 1024 // 4 // 3` = 89 478 485, `PIL/Image.py`): every picture A1111 opens, we open; a 20000 × 20000 PNG (a few hundred KB on disk, 1.2 GB decoded) is refused from its header. |
//! | [`Limits::max_prompt_chars`] | 1 000 000 ([`sd_prompt::DEFAULT_MAX_PROMPT_CHARS`]) | A1111 has no limit; real prompts are a few thousand characters. The prompt parser lives in `sd-prompt` (which cannot depend on this crate): the cap is its [`sd_prompt::Prompt::parse_limited`] / [`sd_prompt::check_prompt_length`], which [`Limits::check_prompt`] calls. |
//! | [`Limits::max_steps`] | 1000 ([`DEFAULT_MAX_STEPS`]) | A1111's UI slider stops at 150 and its API takes any number, but its timestep samplers (DDIM, PLMS, UniPC) fail above the model's 1000 training timesteps (`make_ddim_timesteps`: `1000 // steps` = 0), and no sampler improves past a few hundred. `--steps 18446744073709551615` would otherwise overflow the step arithmetic, and `10^9` allocate gigabytes of schedules. Also caps `prompt --steps`. |
//! | [`Limits::max_batch_size`] | 64 ([`DEFAULT_MAX_BATCH_SIZE`]) | A1111's UI batch size stops at 8 (its API takes more); 64 is 8× that. The whole batch goes through the VAE at once. |
//! | [`Limits::max_generation_pixels`] | 16 777 216 ([`DEFAULT_MAX_GENERATION_PIXELS`], 4096 × 4096) | A1111's width and height sliders stop at 2048; 4096² is what a hires-fix pass of 2048² × 2 makes. The VAE decoder holds 128 f32 channels at full size: 8 GiB per activation at 4096², 128 GiB at 16384². Also caps the "resize seed from" size. |
//! | [`Limits::max_mask_blur`] | 256 ([`DEFAULT_MAX_MASK_BLUR`]) | A1111's "Mask blur" slider stops at 64; the Gaussian kernel has `2·⌊2.5·σ + 0.5⌋ + 1` taps, so `u32::MAX` would be a 21-billion-tap kernel. |
//! | [`Limits::max_pickle_depth`] | 200 ([`sd_torch_file::MAX_DEPTH`]) | torch files nest a handful of levels (a `ParameterDict`'s state is five deep). The reader converts recursively, so the value is clamped to [`sd_torch_file::MAX_DEPTH`]: it can be lowered, never raised past what the stack safely holds. |
//!
//! Fixed caps that are part of a format rather than a policy, documented where they live:
//! [`crate::checkpoint::MAX_HEADER_BYTES`] (a safetensors header, the reference
//! implementation's 100 MB), [`crate::embeddings::MAX_EMBEDDING_FILE_BYTES`] (64 MiB: a
//! checkpoint dropped into the embeddings folder is refused unread),
//! [`crate::embeddings::MAX_EMBEDDING_VALUES`], and [`sd_prompt::MAX_NESTING`] (brackets
//! nested deeper are taken literally, never refused: the prompt parser never fails).
//!
//! Every reader checks declared sizes against the file's real length before allocating, so
//! these caps bound what a *valid-looking* input may cost, not what a lying header can make
//! us allocate (that is never more than the file).
//!
//! ```
//! use sd_core::limits::Limits;
//!
//! let mut limits = Limits::default();
//! limits.max_image_pixels = 4096 * 4096;
//! assert!(limits.check_image_pixels(4096, 4096).is_ok());
//! assert!(limits.check_image_pixels(20_000, 20_000).is_err());
//! assert!(limits.check_prompt("a cat").is_ok());
//! // Configs are serde: absent fields take the defaults.
//! let from_json: Limits = serde_json::from_str(r#"{"max_prompt_chars": 10}"#)?;
//! assert_eq!(from_json.max_prompt_chars, 10);
//! assert_eq!(from_json.max_image_pixels, Limits::default().max_image_pixels);
//! # Ok::<(), serde_json::Error>(())
//! ```

use serde::{Deserialize, Serialize};

/// Default of [`Limits::max_tensor_bytes`]: 4 GiB (see the module table), the torch-file
/// reader's own default.
pub const DEFAULT_MAX_TENSOR_BYTES: u64 = sd_torch_file::DEFAULT_MAX_TENSOR_BYTES;

/// Default of [`Limits::max_image_pixels`]: Pillow's decompression-bomb error threshold,
/// `2 · 89 478 485` pixels.
pub const DEFAULT_MAX_IMAGE_PIXELS: u64 = 2 * 89_478_485;

/// Default of [`Limits::max_steps`] (see the module table).
pub const DEFAULT_MAX_STEPS: usize = 1000;

/// Default of [`Limits::max_batch_size`] (see the module table).
pub const DEFAULT_MAX_BATCH_SIZE: usize = 64;

/// Default of [`Limits::max_generation_pixels`]: 4096 × 4096 (see the module table).
pub const DEFAULT_MAX_GENERATION_PIXELS: u64 = 4096 * 4096;

/// Default of [`Limits::max_mask_blur`] (see the module table).
pub const DEFAULT_MAX_MASK_BLUR: u32 = 256;

/// Bytes per pixel the image decoder may allocate under [`Limits::image_decoder_limits`]:
/// 16-bit RGBA, the widest integer layout the decoders produce. A 32-bit float TIFF (12 or
/// 16 bytes a pixel) over half the pixel cap is refused by this allocation limit.
const DECODER_BYTES_PER_PIXEL: u64 = 8;

/// The caps (see the module docs for each default and why). Serde reads a partial object:
/// absent fields keep their defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Limits {
    /// Largest single tensor, in bytes of its stored dtype, a checkpoint may hold.
    pub max_tensor_bytes: u64,
    /// Largest picture, in pixels (width × height), that is decoded.
    pub max_image_pixels: u64,
    /// Longest prompt, in characters (Unicode scalar values).
    pub max_prompt_chars: usize,
    /// Deepest nesting of a pickle's containers (clamped to [`sd_torch_file::MAX_DEPTH`]).
    pub max_pickle_depth: usize,
    /// Most sampling steps of one generation (or one prompt schedule).
    pub max_steps: usize,
    /// Most pictures of one generation.
    pub max_batch_size: usize,
    /// Largest picture generated, in pixels (width × height); also the "resize seed from" size.
    pub max_generation_pixels: u64,
    /// Largest inpainting mask blur radius, in pixels.
    pub max_mask_blur: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_tensor_bytes: DEFAULT_MAX_TENSOR_BYTES,
            max_image_pixels: DEFAULT_MAX_IMAGE_PIXELS,
            max_prompt_chars: sd_prompt::DEFAULT_MAX_PROMPT_CHARS,
            max_pickle_depth: sd_torch_file::MAX_DEPTH,
            max_steps: DEFAULT_MAX_STEPS,
            max_batch_size: DEFAULT_MAX_BATCH_SIZE,
            max_generation_pixels: DEFAULT_MAX_GENERATION_PIXELS,
            max_mask_blur: DEFAULT_MAX_MASK_BLUR,
        }
    }
}

/// A value over one of the [`Limits`]. Readers wrap it in their own error with the file's
/// name; on its own it says which cap, the value and the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{what} of {value} is over the limit of {limit} (`Limits::{field}`)")]
#[non_exhaustive]
pub struct LimitExceeded {
    /// What was measured (`"tensor bytes"`, `"picture pixels"`, `"prompt characters"`,
    /// `"pickle nesting levels"`).
    pub what: &'static str,
    /// The field of [`Limits`] that refused it.
    pub field: &'static str,
    /// The measured value.
    pub value: u64,
    /// The cap.
    pub limit: u64,
}

impl Limits {
    /// Checks one tensor's size in bytes.
    ///
    /// # Errors
    /// [`LimitExceeded`] when `bytes` is over [`Limits::max_tensor_bytes`].
    pub fn check_tensor_bytes(&self, bytes: u64) -> Result<(), LimitExceeded> {
        check(
            "tensor bytes",
            "max_tensor_bytes",
            bytes,
            self.max_tensor_bytes,
        )
    }

    /// Checks a picture's declared size (from its header, before decoding).
    ///
    /// # Errors
    /// [`LimitExceeded`] when `width × height` is over [`Limits::max_image_pixels`].
    pub fn check_image_pixels(&self, width: u32, height: u32) -> Result<(), LimitExceeded> {
        check(
            "picture pixels",
            "max_image_pixels",
            u64::from(width) * u64::from(height),
            self.max_image_pixels,
        )
    }

    /// Checks a prompt's length (through `sd-prompt`'s own guard).
    ///
    /// # Errors
    /// [`LimitExceeded`] when it has more than [`Limits::max_prompt_chars`] characters.
    pub fn check_prompt(&self, prompt: &str) -> Result<(), LimitExceeded> {
        sd_prompt::check_prompt_length(prompt, self.max_prompt_chars).map_err(|e| LimitExceeded {
            what: "prompt characters",
            field: "max_prompt_chars",
            value: e.chars as u64,
            limit: e.limit as u64,
        })
    }

    /// The pickle nesting cap actually applied: [`Limits::max_pickle_depth`] clamped to
    /// [`sd_torch_file::MAX_DEPTH`].
    pub fn pickle_depth(&self) -> usize {
        self.max_pickle_depth.min(sd_torch_file::MAX_DEPTH)
    }

    /// Checks a pickle's nesting depth.
    ///
    /// # Errors
    /// [`LimitExceeded`] when `depth` is over [`Limits::pickle_depth`].
    pub fn check_pickle_depth(&self, depth: usize) -> Result<(), LimitExceeded> {
        check(
            "pickle nesting levels",
            "max_pickle_depth",
            depth as u64,
            self.pickle_depth() as u64,
        )
    }

    /// Checks a number of sampling steps.
    ///
    /// # Errors
    /// [`LimitExceeded`] (`what`: `"steps"`) when `steps` is over [`Limits::max_steps`].
    pub fn check_steps(&self, steps: u64) -> Result<(), LimitExceeded> {
        check("steps", "max_steps", steps, self.max_steps as u64)
    }

    /// Checks a batch size.
    ///
    /// # Errors
    /// [`LimitExceeded`] (`what`: `"batch_size"`) over [`Limits::max_batch_size`].
    pub fn check_batch_size(&self, batch: u64) -> Result<(), LimitExceeded> {
        check(
            "batch_size",
            "max_batch_size",
            batch,
            self.max_batch_size as u64,
        )
    }

    /// Checks the size of a picture to generate (`what` names it: `"width × height"`, `"seed
    /// resize width × height"`).
    ///
    /// # Errors
    /// [`LimitExceeded`] when `width × height` is over [`Limits::max_generation_pixels`].
    pub fn check_generation_pixels(
        &self,
        what: &'static str,
        width: u32,
        height: u32,
    ) -> Result<(), LimitExceeded> {
        check(
            what,
            "max_generation_pixels",
            u64::from(width) * u64::from(height),
            self.max_generation_pixels,
        )
    }

    /// Checks an inpainting mask blur radius.
    ///
    /// # Errors
    /// [`LimitExceeded`] (`what`: `"mask_blur"`) over [`Limits::max_mask_blur`].
    pub fn check_mask_blur(&self, blur: u32) -> Result<(), LimitExceeded> {
        check(
            "mask_blur",
            "max_mask_blur",
            u64::from(blur),
            u64::from(self.max_mask_blur),
        )
    }

    /// The `image` crate's decoder limits for these caps: no side longer than the pixel cap
    /// allows and at most [`Limits::max_image_pixels`] × 8 bytes (16-bit RGBA) of decoder
    /// allocations. Apply with `ImageReader::limits` before decoding; check the header's size
    /// with [`Limits::check_image_pixels`] too, since the `image` crate caps sides and bytes,
    /// not pixels.
    pub fn image_decoder_limits(&self) -> image::Limits {
        let mut limits = image::Limits::default();
        let side = u32::try_from(self.max_image_pixels).unwrap_or(u32::MAX);
        limits.max_image_width = Some(side);
        limits.max_image_height = Some(side);
        limits.max_alloc = Some(
            self.max_image_pixels
                .saturating_mul(DECODER_BYTES_PER_PIXEL),
        );
        limits
    }
}

/// The torch-file reader's caps: [`Limits::max_tensor_bytes`] and
/// [`Limits::max_pickle_depth`].
impl From<&Limits> for sd_torch_file::TorchFileLimits {
    fn from(limits: &Limits) -> Self {
        let mut torch = Self::default();
        torch.max_tensor_bytes = limits.max_tensor_bytes;
        torch.max_pickle_depth = limits.max_pickle_depth;
        torch
    }
}

fn check(
    what: &'static str,
    field: &'static str,
    value: u64,
    limit: u64,
) -> Result<(), LimitExceeded> {
    if value > limit {
        Err(LimitExceeded {
            what,
            field,
            value,
            limit,
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_numbers() {
        let l = Limits::default();
        assert_eq!(l.max_tensor_bytes, 4 * 1024 * 1024 * 1024);
        assert_eq!(l.max_image_pixels, 178_956_970);
        assert_eq!(l.max_prompt_chars, 1_000_000);
        assert_eq!(l.max_pickle_depth, 200);
        assert_eq!(l.max_steps, 1000);
        assert_eq!(l.max_batch_size, 64);
        assert_eq!(l.max_generation_pixels, 4096 * 4096);
        assert_eq!(l.max_mask_blur, 256);
    }

    #[test]
    fn checks_refuse_only_above_the_cap() {
        let l = Limits::default();
        assert!(l.check_tensor_bytes(DEFAULT_MAX_TENSOR_BYTES).is_ok());
        assert!(l.check_tensor_bytes(1 << 60).is_err());
        assert!(l.check_image_pixels(1, 1).is_ok());
        // Pillow's warning threshold passes, its error threshold + 1 does not.
        assert!(l.check_image_pixels(89_478_485, 1).is_ok());
        let err = l
            .check_image_pixels(20_000, 20_000)
            .expect_err("400 MP is over the cap");
        assert_eq!(err.value, 400_000_000);
        assert!(err.to_string().contains("max_image_pixels"), "{err}");
        assert!(l.check_prompt(&"é".repeat(1_000_000)).is_ok());
        assert!(l.check_prompt(&"a".repeat(1_000_001)).is_err());
        assert!(l.check_steps(1000).is_ok());
        let err = l.check_steps(u64::MAX).expect_err("over");
        assert!(err.to_string().contains("steps"), "{err}");
        assert!(l.check_batch_size(64).is_ok() && l.check_batch_size(65).is_err());
        assert!(l.check_generation_pixels("size", 4096, 4096).is_ok());
        assert!(l.check_generation_pixels("size", 16384, 16384).is_err());
        assert!(l.check_mask_blur(256).is_ok() && l.check_mask_blur(u32::MAX).is_err());
        let mut deep = l;
        deep.max_pickle_depth = 1 << 20;
        assert_eq!(deep.pickle_depth(), sd_torch_file::MAX_DEPTH);
    }

    #[test]
    fn serde_reads_partial_configs_and_refuses_unknown_fields() {
        let l: Limits = serde_json::from_str(r#"{"max_tensor_bytes": 1024}"#).expect("partial");
        assert_eq!(l.max_tensor_bytes, 1024);
        assert_eq!(l.max_prompt_chars, Limits::default().max_prompt_chars);
        assert!(serde_json::from_str::<Limits>(r#"{"max_pixels": 1}"#).is_err());
    }
}
