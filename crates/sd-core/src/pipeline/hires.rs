//! A1111's hires fix (`StableDiffusionProcessingTxt2Img` with `enable_hr`): the first pass
//! at the requested size, its latents (or pictures) upscaled to the target size, then an
//! img2img pass there — with fresh generators of the same seeds, the hires prompts and
//! sampler, and A1111's step arithmetic for a second pass.

use std::fmt;
use std::str::FromStr;

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::latent_resize::LatentMode;
use super::pil_resize::{PilFilter, resize_rgb, resize_rgb_nearest};

/// The upscalers of A1111's "Upscaler" list that need no model: the latent ones (the
/// first pass's latents resized by `torch.nn.functional.interpolate`) and the picture ones
/// (the first pass decoded, resized with PIL, encoded again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HiresUpscaler {
    /// "Latent": bilinear. A1111's default.
    #[default]
    Latent,
    /// "Latent (antialiased)": bilinear, antialiased.
    LatentAntialiased,
    /// "Latent (bicubic)".
    LatentBicubic,
    /// "Latent (bicubic antialiased)".
    LatentBicubicAntialiased,
    /// "Latent (nearest)".
    LatentNearest,
    /// "Latent (nearest-exact)".
    LatentNearestExact,
    /// "None": the picture resized once with PIL's Lanczos.
    None,
    /// "Lanczos": A1111's `UpscalerLanczos` on the decoded picture.
    Lanczos,
    /// "Nearest": A1111's `UpscalerNearest` on the decoded picture.
    Nearest,
}

impl HiresUpscaler {
    /// Every upscaler, in A1111's list order.
    pub const ALL: [Self; 9] = [
        Self::Latent,
        Self::LatentAntialiased,
        Self::LatentBicubic,
        Self::LatentBicubicAntialiased,
        Self::LatentNearest,
        Self::LatentNearestExact,
        Self::None,
        Self::Lanczos,
        Self::Nearest,
    ];

    /// The name A1111 shows and writes (`Hires upscaler: Latent (bicubic)`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Latent => "Latent",
            Self::LatentAntialiased => "Latent (antialiased)",
            Self::LatentBicubic => "Latent (bicubic)",
            Self::LatentBicubicAntialiased => "Latent (bicubic antialiased)",
            Self::LatentNearest => "Latent (nearest)",
            Self::LatentNearestExact => "Latent (nearest-exact)",
            Self::None => "None",
            Self::Lanczos => "Lanczos",
            Self::Nearest => "Nearest",
        }
    }

    /// The latent resize mode, `None` for the picture upscalers.
    pub(crate) fn latent_mode(self) -> Option<LatentMode> {
        Some(match self {
            Self::Latent => LatentMode::Bilinear { antialias: false },
            Self::LatentAntialiased => LatentMode::Bilinear { antialias: true },
            Self::LatentBicubic => LatentMode::Bicubic { antialias: false },
            Self::LatentBicubicAntialiased => LatentMode::Bicubic { antialias: true },
            Self::LatentNearest => LatentMode::Nearest,
            Self::LatentNearestExact => LatentMode::NearestExact,
            Self::None | Self::Lanczos | Self::Nearest => return None,
        })
    }
}

impl fmt::Display for HiresUpscaler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HiresUpscaler {
    type Err = String;

    /// A1111's name (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|u| u.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|u| u.name()).collect();
                format!(
                    "`{s}` is not an upscaler this library has (one of: {}; model upscalers such as ESRGAN are not supported)",
                    names.join(", ")
                )
            })
    }
}

impl Serialize for HiresUpscaler {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for HiresUpscaler {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The hires-fix settings, named after A1111's API fields. `Default` is A1111's UI: upscale
/// by 2 with "Latent", the first pass's steps, denoising strength 0.7.
///
/// ```
/// use sd_core::GenerationRequest;
/// use sd_core::pipeline::{HiresFix, HiresUpscaler};
/// let request = GenerationRequest {
///     prompt: "a castle on a hill".into(),
///     width: 512,
///     height: 512,
///     hires: Some(HiresFix { hr_upscaler: HiresUpscaler::LatentBicubic, ..Default::default() }),
///     ..Default::default()
/// };
/// assert_eq!(request.hires.as_ref().map(|h| h.target(512, 512).size), Some((1024, 1024)));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HiresFix {
    /// "Upscale by" (used when both resize sides are 0).
    pub hr_scale: f32,
    /// "Resize width to" (0: from the height, or from `hr_scale` when both are 0).
    pub hr_resize_x: u32,
    /// "Resize height to".
    pub hr_resize_y: u32,
    /// "Upscaler".
    pub hr_upscaler: HiresUpscaler,
    /// "Hires steps" (0: the first pass's steps).
    pub hr_second_pass_steps: usize,
    /// "Denoising strength" of the second pass (above 0, at most 1).
    pub denoising_strength: f32,
    /// "Hires sampling method" (`None`: the first pass's).
    pub hr_sampler: Option<String>,
    /// "Hires schedule type" (`None`: the first pass's).
    pub hr_scheduler: Option<String>,
    /// "Hires prompt" (empty: the first pass's prompt).
    pub hr_prompt: String,
    /// "Hires negative prompt" (empty: the first pass's).
    pub hr_negative_prompt: String,
    /// "Hires CFG Scale" (`None`: the first pass's).
    pub hr_cfg_scale: Option<f32>,
}

impl Default for HiresFix {
    fn default() -> Self {
        Self {
            hr_scale: 2.0,
            hr_resize_x: 0,
            hr_resize_y: 0,
            hr_upscaler: HiresUpscaler::Latent,
            hr_second_pass_steps: 0,
            denoising_strength: 0.7,
            hr_sampler: None,
            hr_scheduler: None,
            hr_prompt: String::new(),
            hr_negative_prompt: String::new(),
            hr_cfg_scale: None,
        }
    }
}

/// Where the second pass works: A1111's `hr_upscale_to_x/y` and `truncate_x/y`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HiresTarget {
    /// The size the first pass is upscaled to (width, height).
    pub size: (u32, u32),
    /// Latent columns and rows cut off (half each side) to reach the requested aspect.
    pub truncate: (u32, u32),
}

impl HiresTarget {
    /// The size of the final pictures: the upscaled size less the truncated latents.
    pub fn output_size(&self) -> (u32, u32) {
        (
            self.size
                .0
                .saturating_sub(self.truncate.0.saturating_mul(8)),
            self.size
                .1
                .saturating_sub(self.truncate.1.saturating_mul(8)),
        )
    }
}

impl HiresFix {
    /// A1111's `calculate_target_resolution` for a first pass of `width` × `height`.
    pub fn target(&self, width: u32, height: u32) -> HiresTarget {
        let (w, h) = (u64::from(width), u64::from(height));
        let (rx, ry) = (u64::from(self.hr_resize_x), u64::from(self.hr_resize_y));
        let fit = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        if rx == 0 && ry == 0 {
            // Python's `int(self.width * self.hr_scale)`, with the scale as typed (1.3, not
            // the f32 widened to 1.2999999523: 40 × 1.3 is 52 in A1111, not 51).
            let scale = super::as_typed(self.hr_scale);
            let scaled = |side: u32| (f64::from(side) * scale) as u32;
            return HiresTarget {
                size: (scaled(width), scaled(height)),
                truncate: (0, 0),
            };
        }
        if ry == 0 {
            return HiresTarget {
                size: (fit(rx), fit(rx * h / w.max(1))),
                truncate: (0, 0),
            };
        }
        if rx == 0 {
            return HiresTarget {
                size: (fit(ry * w / h.max(1)), fit(ry)),
                truncate: (0, 0),
            };
        }
        let src_ratio = w as f64 / h as f64;
        let dst_ratio = rx as f64 / ry as f64;
        let (x, y) = if src_ratio < dst_ratio {
            (rx, rx * h / w.max(1))
        } else {
            (ry * w / h.max(1), ry)
        };
        HiresTarget {
            size: (fit(x), fit(y)),
            truncate: (fit(x.saturating_sub(rx) / 8), fit(y.saturating_sub(ry) / 8)),
        }
    }

    /// The second pass's sampling steps (A1111's `hr_second_pass_steps or steps`).
    pub fn steps(&self, first_pass: usize) -> usize {
        if self.hr_second_pass_steps == 0 {
            first_pass
        } else {
            self.hr_second_pass_steps
        }
    }
}

/// A1111's `images.resize_image(0, picture, width, height, upscaler)` with a model-free
/// upscaler: "None" is one Lanczos resize; "Lanczos" and "Nearest" run `Upscaler.upscale`
/// (resize by the scale with their filter, up to three rounds, stopping once the size
/// reaches the scaled size rounded down to 8, then Lanczos to that size) and a final Lanczos
/// resize to `width` × `height` when the sizes still differ.
pub(crate) fn upscale_picture(
    picture: &RgbImage,
    width: u32,
    height: u32,
    upscaler: HiresUpscaler,
) -> RgbImage {
    let lanczos = |p: &RgbImage, w, h| resize_rgb(p, w, h, PilFilter::Lanczos);
    if !matches!(upscaler, HiresUpscaler::Lanczos | HiresUpscaler::Nearest) {
        return lanczos(picture, width, height);
    }
    let (w0, h0) = picture.dimensions();
    let scale =
        (f64::from(width) / f64::from(w0.max(1))).max(f64::from(height) / f64::from(h0.max(1)));
    let mut picture = picture.clone();
    if scale > 1.0 {
        // `int((img.width * scale) // 8 * 8)`.
        let dest = |side: u32| ((f64::from(side) * scale / 8.0).floor() * 8.0) as u32;
        let (dest_w, dest_h) = (dest(w0), dest(h0));
        // A1111 1.10's loop: stop before upscaling once the size is reached (not on the first
        // round of a scale of 1), and when an upscale changes nothing.
        for round in 0..3 {
            if picture.width() >= dest_w
                && picture.height() >= dest_h
                && (round > 0 || scale != 1.0)
            {
                break;
            }
            let shape = picture.dimensions();
            let (nw, nh) = (
                (f64::from(shape.0) * scale) as u32,
                (f64::from(shape.1) * scale) as u32,
            );
            picture = match upscaler {
                HiresUpscaler::Nearest => resize_rgb_nearest(&picture, nw, nh),
                _ => lanczos(&picture, nw, nh),
            };
            if picture.dimensions() == shape {
                break;
            }
        }
        if picture.dimensions() != (dest_w, dest_h) {
            picture = lanczos(&picture, dest_w, dest_h);
        }
    }
    if picture.dimensions() != (width, height) {
        picture = lanczos(&picture, width, height);
    }
    picture
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_sizes_follow_a1111() {
        let scale = HiresFix {
            hr_scale: 1.5,
            ..HiresFix::default()
        };
        assert_eq!(scale.target(512, 768).size, (768, 1152));
        let width_only = HiresFix {
            hr_resize_x: 1000,
            ..HiresFix::default()
        };
        assert_eq!(width_only.target(512, 768).size, (1000, 1500));
        let both = HiresFix {
            hr_resize_x: 1024,
            hr_resize_y: 512,
            ..HiresFix::default()
        };
        // 512×512 to 1024×512: widen to 1024×1024, cut 64 latent rows.
        let t = both.target(512, 512);
        assert_eq!((t.size, t.truncate), ((1024, 1024), (0, 64)));
        assert_eq!(t.output_size(), (1024, 512));
    }

    #[test]
    fn upscaler_names_round_trip() {
        for u in HiresUpscaler::ALL {
            assert_eq!(u.name().parse::<HiresUpscaler>(), Ok(u));
        }
        assert!("ESRGAN_4x".parse::<HiresUpscaler>().is_err());
    }
}
