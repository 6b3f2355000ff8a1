//! [`GenerationParameters`]: an infotext as typed fields, read with A1111's rules and written
//! back with `create_infotext`'s formatting.

use serde::{Deserialize, Serialize};

use super::number::ui_number;
use super::parse::{sections, unquoted_pairs};
use super::quote::quote;
use super::unicode::py_strip;

/// The keys `create_infotext` (`modules/processing.py`, v1.10) writes before
/// `p.extra_generation_params`, in its order. A key here is written at this place whether it
/// is a typed field or an entry of [`GenerationParameters::extra`].
const FIXED_ORDER: &[&str] = &[
    "Steps",
    "Sampler",
    "Schedule type",
    "CFG scale",
    "Image CFG scale",
    "Seed",
    "Face restoration",
    "Size",
    "Model hash",
    "Model",
    "FP8 weight",
    "Cache FP16 weight for LoRA",
    "VAE hash",
    "VAE",
    "Variation seed",
    "Variation seed strength",
    "Seed resize from",
    "Denoising strength",
    "Conditional mask weight",
    "Clip skip",
    "ENSD",
    "Token merging ratio",
    "Token merging ratio hr",
    "Init image hash",
    "RNG",
    "Tiling",
];

/// The generation parameters of an image, as A1111 writes them into its `parameters` PNG text
/// (the "infotext"):
///
/// ```text
/// a photo of a cat
/// Negative prompt: blurry
/// Steps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1, Size: 512x512, Model hash: 7460a6fa, Version: v1.10.1
/// ```
///
/// The common keys are typed fields; every other key is kept in [`extra`](Self::extra), in
/// order. [`parse`](Self::parse) followed by [`to_infotext`](Self::to_infotext) gives back the
/// text A1111's own formatting would write for what it parsed: key order, quoting and number
/// spelling (`7` vs `7.0`) included, kept in [`layout`](Self::layout).
///
/// A typed value that does not parse (`Steps: 20 `, `Seed: 1e3`) stays in `extra` as text, so
/// nothing read is lost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerationParameters {
    /// The prompt: the lines before `Negative prompt:` (each stripped, joined with `\n`).
    pub prompt: String,
    /// The negative prompt; empty when the infotext has none (nothing is written then).
    pub negative_prompt: String,
    /// `Steps`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<u32>,
    /// `Sampler`, as A1111 names it (`Euler a`, `DPM++ 2M`; older files: `DPM++ 2M Karras`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampler: Option<String>,
    /// `Schedule type` (`Automatic`, `Karras`, ...; A1111 1.9 and later).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_type: Option<String>,
    /// `CFG scale`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cfg_scale: Option<f64>,
    /// `Image CFG scale` (instruct-pix2pix models).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_cfg_scale: Option<f64>,
    /// `Seed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// The width of `Size: WxH`; the size is written only when both sides are set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// The height of `Size: WxH`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// `Model hash` (A1111's short hash of the checkpoint).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_hash: Option<String>,
    /// `Model` (the checkpoint's name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `VAE hash`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vae_hash: Option<String>,
    /// `VAE` (its name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vae: Option<String>,
    /// `Variation seed` (A1111's subseed; written only with a non-zero strength).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variation_seed: Option<i64>,
    /// `Variation seed strength` (subseed strength).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variation_seed_strength: Option<f64>,
    /// `Seed resize from: WxH`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed_resize_from: Option<(u32, u32)>,
    /// `Denoising strength` (img2img, hires fix).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub denoising_strength: Option<f64>,
    /// `Clip skip` (A1111 writes it only above 1; a missing one means 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip_skip: Option<u32>,
    /// `ENSD` (eta noise seed delta).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ensd: Option<i64>,
    /// `RNG` (`CPU`, `NV`; A1111 leaves out its default, `GPU`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rng: Option<String>,
    /// `Mask blur` (inpainting).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask_blur: Option<u32>,
    /// `Version` (of the program that wrote it, e.g. `v1.10.1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Every other `key: value`, in order, values unquoted (`TI hashes`, `Lora hashes`,
    /// `Hires upscale`, `Emphasis`, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<(String, String)>,
    /// What [`parse`](Self::parse) read: every key in the text's order with its value as
    /// written (unquoted). [`to_infotext`](Self::to_infotext) keeps this order and spelling
    /// for the keys whose value is unchanged; empty for parameters built in code, which are
    /// written in `create_infotext`'s order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub layout: Vec<(String, String)>,
}

/// How a typed key's text reads into its field and back.
enum Slot<'a> {
    U32(&'a mut Option<u32>),
    I64(&'a mut Option<i64>),
    F64(&'a mut Option<f64>),
    Text(&'a mut Option<String>),
    Size(&'a mut Option<u32>, &'a mut Option<u32>),
    Pair(&'a mut Option<(u32, u32)>),
}

fn parse_size(v: &str) -> Option<(u32, u32)> {
    let (w, h) = v.split_once('x')?;
    Some((w.parse().ok()?, h.parse().ok()?))
}

impl Slot<'_> {
    /// Stores the value read from `text`; false (and nothing stored) where it does not parse.
    fn set(self, text: &str) -> bool {
        fn put<T>(slot: &mut Option<T>, v: Option<T>) -> bool {
            let ok = v.is_some();
            if ok {
                *slot = v;
            }
            ok
        }
        match self {
            Slot::U32(s) => put(s, text.parse().ok()),
            Slot::I64(s) => put(s, text.parse().ok()),
            Slot::F64(s) => put(s, text.parse().ok()),
            Slot::Text(s) => put(s, Some(text.to_owned())),
            Slot::Size(w, h) => match parse_size(text) {
                Some((a, b)) => {
                    (*w, *h) = (Some(a), Some(b));
                    true
                }
                None => false,
            },
            Slot::Pair(s) => put(s, parse_size(text)),
        }
    }

    /// The field as text, when set: `spelling` (the text it was read from) where that still
    /// reads to the same value, otherwise A1111's formatting.
    fn get(self, spelling: Option<&str>) -> Option<String> {
        let same = |now: &str| spelling.filter(|s| *s == now).map(str::to_owned);
        match self {
            Slot::U32(s) => s.map(|v| {
                spelling
                    .filter(|t| t.parse() == Ok(v))
                    .map_or_else(|| v.to_string(), str::to_owned)
            }),
            Slot::I64(s) => s.map(|v| {
                spelling
                    .filter(|t| t.parse() == Ok(v))
                    .map_or_else(|| v.to_string(), str::to_owned)
            }),
            Slot::F64(s) => s.map(|v| {
                spelling
                    .filter(|t| t.parse::<f64>().is_ok_and(|p| p.to_bits() == v.to_bits()))
                    .map_or_else(|| ui_number(v), str::to_owned)
            }),
            Slot::Text(s) => s.clone().map(|v| same(&v).unwrap_or(v)),
            Slot::Size(w, h) => match (*w, *h) {
                (Some(w), Some(h)) => Some(
                    spelling
                        .filter(|t| parse_size(t) == Some((w, h)))
                        .map_or_else(|| format!("{w}x{h}"), str::to_owned),
                ),
                _ => None,
            },
            Slot::Pair(s) => s.map(|(w, h)| {
                spelling
                    .filter(|t| parse_size(t) == Some((w, h)))
                    .map_or_else(|| format!("{w}x{h}"), str::to_owned)
            }),
        }
    }
}

impl GenerationParameters {
    /// The typed field behind an infotext key, if any.
    fn slot(&mut self, key: &str) -> Option<Slot<'_>> {
        Some(match key {
            "Steps" => Slot::U32(&mut self.steps),
            "Sampler" => Slot::Text(&mut self.sampler),
            "Schedule type" => Slot::Text(&mut self.schedule_type),
            "CFG scale" => Slot::F64(&mut self.cfg_scale),
            "Image CFG scale" => Slot::F64(&mut self.image_cfg_scale),
            "Seed" => Slot::I64(&mut self.seed),
            "Size" => Slot::Size(&mut self.width, &mut self.height),
            "Model hash" => Slot::Text(&mut self.model_hash),
            "Model" => Slot::Text(&mut self.model),
            "VAE hash" => Slot::Text(&mut self.vae_hash),
            "VAE" => Slot::Text(&mut self.vae),
            "Variation seed" => Slot::I64(&mut self.variation_seed),
            "Variation seed strength" => Slot::F64(&mut self.variation_seed_strength),
            "Seed resize from" => Slot::Pair(&mut self.seed_resize_from),
            "Denoising strength" => Slot::F64(&mut self.denoising_strength),
            "Clip skip" => Slot::U32(&mut self.clip_skip),
            "ENSD" => Slot::I64(&mut self.ensd),
            "RNG" => Slot::Text(&mut self.rng),
            "Mask blur" => Slot::U32(&mut self.mask_blur),
            "Version" => Slot::Text(&mut self.version),
            _ => return None,
        })
    }

    /// Every typed key, in the order [`to_infotext`](Self::to_infotext) writes them when no
    /// layout says otherwise.
    const TYPED_KEYS: [&'static str; 20] = [
        "Steps",
        "Sampler",
        "Schedule type",
        "CFG scale",
        "Image CFG scale",
        "Seed",
        "Size",
        "Model hash",
        "Model",
        "VAE hash",
        "VAE",
        "Variation seed",
        "Variation seed strength",
        "Seed resize from",
        "Denoising strength",
        "Clip skip",
        "ENSD",
        "RNG",
        "Mask blur",
        "Version",
    ];

    /// Reads an infotext with A1111's rules (`parse_generation_parameters`): the prompt
    /// lines, the `Negative prompt:` lines, and the last line's `key: value` pairs when it
    /// holds three or more of them (otherwise it is part of the prompt). Never fails.
    ///
    /// Only what the text says is stored; A1111's defaults (`Clip skip` 1, `RNG` GPU, ...)
    /// are not filled in here: [`parse_generation_parameters`](super::parse_generation_parameters)
    /// returns A1111's whole map with them.
    pub fn parse(text: &str) -> Self {
        let sections = sections(text);
        let pairs = unquoted_pairs(sections.params);
        let mut params = Self {
            prompt: sections.prompt,
            negative_prompt: sections.negative_prompt,
            ..Self::default()
        };
        for (key, value) in &pairs {
            let typed = params.slot(key).is_some_and(|slot| slot.set(value));
            if !typed {
                params.extra.push((key.clone(), value.clone()));
            }
        }
        params.layout = pairs;
        params
    }

    /// The value of an [`extra`](Self::extra) key (the last one, if repeated).
    pub fn extra_value(&self, key: &str) -> Option<&str> {
        self.extra
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets an [`extra`](Self::extra) key, in place if present, otherwise at the end.
    pub fn set_extra(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let (key, value) = (key.into(), value.into());
        match self.extra.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.extra.push((key, value)),
        }
    }

    /// A `name: hash, name: hash` list such as `TI hashes` or `Lora hashes`, split into
    /// pairs (A1111 writes `", ".join(f"{name}: {hash}")`). Empty when the key is absent.
    pub fn hash_list(&self, key: &str) -> Vec<(String, String)> {
        let Some(v) = self.extra_value(key) else {
            return Vec::new();
        };
        v.split(", ")
            .filter_map(|item| item.rsplit_once(':'))
            .map(|(name, hash)| (py_strip(name).to_owned(), py_strip(hash).to_owned()))
            .collect()
    }

    /// Every key and its text, in `create_infotext`'s order: its fixed keys, then the extra
    /// generation parameters (`Mask blur` first, then [`extra`](Self::extra) in order), then
    /// `Version` and `User`.
    fn entries_in_a1111_order(&self) -> Vec<(String, String)> {
        let mut this = self.clone();
        let spelling = |key: &str| {
            self.layout
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let typed = |this: &mut Self, key: &str| this.slot(key).and_then(|s| s.get(spelling(key)));
        let mut out: Vec<(String, String)> = Vec::new();
        let push_key = |this: &mut Self, out: &mut Vec<(String, String)>, key: &str| {
            if let Some(text) = typed(this, key) {
                out.push((key.to_owned(), text));
            }
            for (k, v) in &self.extra {
                if k == key {
                    out.push((k.clone(), v.clone()));
                }
            }
        };
        for key in FIXED_ORDER {
            push_key(&mut this, &mut out, key);
        }
        push_key(&mut this, &mut out, "Mask blur");
        for (k, v) in &self.extra {
            let placed = FIXED_ORDER.contains(&k.as_str())
                || matches!(k.as_str(), "Mask blur" | "Version" | "User");
            if !placed {
                out.push((k.clone(), v.clone()));
            }
        }
        push_key(&mut this, &mut out, "Version");
        push_key(&mut this, &mut out, "User");
        debug_assert!(
            Self::TYPED_KEYS
                .iter()
                .all(|k| FIXED_ORDER.contains(k) || matches!(*k, "Mask blur" | "Version"))
        );
        out
    }

    /// The key/value entries in the order they will be written: the layout's order for the
    /// keys it has, each other key right after the key that precedes it in A1111's order.
    fn entries(&self) -> Vec<(String, String)> {
        let canonical = self.entries_in_a1111_order();
        if self.layout.is_empty() {
            return canonical;
        }
        let mut out: Vec<(String, String)> = Vec::new();
        for (key, _) in &self.layout {
            if out.iter().any(|(k, _)| k == key) {
                continue;
            }
            out.extend(canonical.iter().filter(|(k, _)| k == key).cloned());
        }
        for (i, (key, value)) in canonical.iter().enumerate() {
            if out.iter().any(|(k, _)| k == key) {
                continue;
            }
            let after = canonical[..i]
                .iter()
                .rev()
                .find_map(|(prev, _)| out.iter().rposition(|(k, _)| k == prev))
                .map_or(0, |p| p + 1);
            out.insert(after, (key.clone(), value.clone()));
        }
        out
    }

    /// The infotext, formatted as `create_infotext` formats it: the prompt, then
    /// `\nNegative prompt: ...` when there is one, then `\n` and the parameters joined with
    /// `", "`, each `key: value` with the value quoted by A1111's `quote` (JSON where it holds
    /// `,`, `:` or a newline), a value equal to its key written as the bare key, and the
    /// whole stripped.
    ///
    /// Numbers print as A1111's UI makes them print: integral floats without `.0` (`CFG
    /// scale: 7`), others as Python prints them (`0.75`, `1e-05`); a value read by
    /// [`parse`](Self::parse) and left unchanged keeps its spelling (`7.0` stays `7.0`).
    /// Every field that is set is written: leave out what A1111 leaves out (`Clip skip` 1,
    /// `RNG` GPU, a variation seed with strength 0) by setting it to `None`.
    pub fn to_infotext(&self) -> String {
        let params = self
            .entries()
            .into_iter()
            .map(|(k, v)| {
                if k == v {
                    k
                } else {
                    format!("{k}: {}", quote(&v))
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let negative = if self.negative_prompt.is_empty() {
            String::new()
        } else {
            format!("\nNegative prompt: {}", self.negative_prompt)
        };
        py_strip(&format!("{}{negative}\n{params}", self.prompt)).to_owned()
    }
}

impl std::fmt::Display for GenerationParameters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_infotext())
    }
}

impl std::str::FromStr for GenerationParameters {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::parse(s))
    }
}
