//! The settings of A1111's "Preprocess images" tab that this crate implements.

use serde::{Deserialize, Serialize};

use super::caption::CaptionAction;
use super::error::PreprocessError;
use super::focal::FocalWeights;

/// How a picture that is not split is brought to the target size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CropMode {
    /// Scale to cover the target, keep the middle (A1111's default resize,
    /// `images.resize_image` mode 1).
    #[default]
    Center,
    /// Auto focal-point crop (A1111's "Auto focal point crop"); square pictures still use the
    /// center crop, as in A1111.
    Focal,
}

impl std::str::FromStr for CropMode {
    type Err = PreprocessError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "center" => Ok(Self::Center),
            "focal" => Ok(Self::Focal),
            _ => Err(PreprocessError::InvalidOption {
                name: "crop mode",
                value: s.to_owned(),
                expected: "center or focal",
            }),
        }
    }
}

/// Pillow's `DecompressionBombError` threshold (`2 · MAX_IMAGE_PIXELS`), the default cap on
/// source and intermediate pictures (the same as
/// [`sd_core::limits::DEFAULT_MAX_IMAGE_PIXELS`]).
pub const DEFAULT_MAX_PIXELS: u64 = sd_core::limits::DEFAULT_MAX_IMAGE_PIXELS;

/// Preprocessing settings. `Default` is A1111's defaults: 512×512, center crop, no split
/// (threshold 0.5, overlap 0.2 when enabled), no flip, existing captions ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PreprocessOptions {
    /// Output width in pixels.
    pub width: u32,
    /// Output height in pixels.
    pub height: u32,
    /// Center or focal-point crop.
    pub crop: CropMode,
    /// Weights of the focal-point search (used with [`CropMode::Focal`]).
    pub focal_weights: FocalWeights,
    /// Cut pictures much longer than the target's aspect into overlapping pieces.
    pub split_oversized: bool,
    /// Split when `(short/long of the picture) / (short/long of the target)` is at most this
    /// (clamped to `0..=1`).
    pub split_threshold: f64,
    /// Fraction of a piece shared with the next (clamped to `0..=0.9`).
    pub overlap_ratio: f64,
    /// Also write a left–right mirrored copy of every output.
    pub flip: bool,
    /// What to do with `.txt` captions beside the pictures.
    pub caption_action: CaptionAction,
    /// Also write the picture at its original size (A1111's "Keep original size"; it then
    /// skips the default center crop, as A1111 does).
    pub keep_original_size: bool,
    /// Largest picture, in pixels, any step may build; larger ones are skipped with
    /// [`PreprocessError::TooLarge`].
    pub max_pixels: u64,
}

impl Default for PreprocessOptions {
    fn default() -> Self {
        Self {
            width: 512,
            height: 512,
            crop: CropMode::Center,
            focal_weights: FocalWeights::default(),
            split_oversized: false,
            split_threshold: 0.5,
            overlap_ratio: 0.2,
            flip: false,
            caption_action: CaptionAction::Ignore,
            keep_original_size: false,
            max_pixels: DEFAULT_MAX_PIXELS,
        }
    }
}

impl PreprocessOptions {
    /// Checks the sizes and that the ratios are numbers.
    ///
    /// # Errors
    /// [`PreprocessError::InvalidOption`] naming the first bad option.
    pub fn validate(&self) -> Result<(), PreprocessError> {
        let bad = |name, value: String, expected| {
            Err(PreprocessError::InvalidOption {
                name,
                value,
                expected,
            })
        };
        if self.width == 0 {
            return bad("width", self.width.to_string(), "at least 1");
        }
        if self.height == 0 {
            return bad("height", self.height.to_string(), "at least 1");
        }
        if !self.split_threshold.is_finite() {
            return bad(
                "split threshold",
                self.split_threshold.to_string(),
                "a number",
            );
        }
        if !self.overlap_ratio.is_finite() {
            return bad("overlap ratio", self.overlap_ratio.to_string(), "a number");
        }
        let w = &self.focal_weights;
        if !(w.edges.is_finite() && w.entropy.is_finite() && w.edges >= 0.0 && w.entropy >= 0.0) {
            return bad(
                "focal weights",
                format!("{}/{}", w.edges, w.entropy),
                "non-negative numbers",
            );
        }
        Ok(())
    }
}
