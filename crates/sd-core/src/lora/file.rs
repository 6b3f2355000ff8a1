//! Reading a LoRA file: kohya's layout (sd-scripts, A1111, most downloads) and diffusers'
//! (PEFT `lora_A`/`lora_B`, and the older attention-processor `to_q_lora.down`), into one
//! table of modules under kohya's names.
//!
//! | file key | module | part |
//! |---|---|---|
//! | `lora_unet_{path}.lora_down.weight` / `.lora_up.weight` / `.alpha` | `lora_unet_{path}` | down / up / alpha |
//! | `lora_te_text_model_{path}...` | `lora_te_text_model_{path}` | (text encoder) |
//! | `unet.{path}.lora_A.weight` / `.lora_B.weight` (PEFT) | `lora_unet_{path}` | down / up |
//! | `text_encoder.text_model.{path}.lora_A.weight` | `lora_te_text_model_{path}` | down / up |
//! | `unet.{path}.processor.to_q_lora.down.weight` (diffusers ≤ 0.20) | `lora_unet_{path}_to_q` | down / up |
//!
//! `{path}` is the diffusers module path with `_` for `.`. A module without `.alpha` is scaled
//! by 1 (alpha = rank, as diffusers does for PEFT files). Modules of other kinds (LoHa, LoKr,
//! IA3, OFT, DoRA scales, full diffs, CP-decomposed `lora_mid`) are listed, not applied.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::SafeTensors;

use super::error::{LoraError, Result};
use crate::checkpoint::floats_of;

/// One LoRA module: `W += multiplier · alpha / rank · up · down`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraModule {
    /// `lora_down` (PEFT's `lora_A`): `[rank, in]` or `[rank, in, kh, kw]`.
    pub down: LoraTensor,
    /// `lora_up` (`lora_B`): `[out, rank]` or `[out, rank, 1, 1]`.
    pub up: LoraTensor,
    /// The file's alpha; `None` means alpha = rank (a scale of 1).
    pub alpha: Option<f32>,
}

impl LoraModule {
    /// The rank: `down`'s first dimension.
    pub fn rank(&self) -> usize {
        self.down.shape.first().copied().unwrap_or(0)
    }

    /// `alpha / rank`, or 1 without alpha (A1111's `calc_scale`).
    pub fn scale(&self) -> f32 {
        match self.alpha {
            Some(alpha) if self.rank() > 0 => alpha / self.rank() as f32,
            _ => 1.0,
        }
    }

    /// The update's output and input sizes and kernel: `[out, in, kh, kw]` (`kh = kw = 1` for
    /// linear layers).
    pub fn update_shape(&self) -> [usize; 4] {
        let out = self.up.shape[0];
        let input = self.down.shape[1];
        let (kh, kw) = match self.down.shape[..] {
            [_, _, kh, kw] => (kh, kw),
            _ => (1, 1),
        };
        [out, input, kh, kw]
    }
}

/// A tensor of a LoRA file, as f32.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraTensor {
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its values, row-major.
    pub values: Vec<f32>,
}

/// A LoRA file's modules, by kohya name.
#[derive(Debug, Clone)]
pub struct LoraFile {
    path: PathBuf,
    modules: BTreeMap<String, LoraModule>,
    unsupported: Vec<String>,
}

/// Which part of a module a key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Down,
    Up,
    Alpha,
}

impl LoraFile {
    /// Reads the LoRA at `path`.
    ///
    /// # Errors
    /// [`LoraError::Io`] when unreadable, [`LoraError::Format`] when not safetensors,
    /// [`LoraError::Shape`] for a module whose down, up and alpha do not fit together.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| LoraError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_bytes(path, &bytes)
    }

    /// A LoRA held in memory; `path` names it in errors.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn from_bytes(path: impl AsRef<Path>, bytes: &[u8]) -> Result<Self> {
        let path = path.as_ref();
        let format = |reason: String| LoraError::Format {
            path: path.to_owned(),
            reason,
        };
        let st = SafeTensors::deserialize(bytes).map_err(|e| format(e.to_string()))?;
        let mut parts: BTreeMap<String, [Option<LoraTensor>; 3]> = BTreeMap::new();
        let mut unsupported = Vec::new();
        for name in st.names() {
            let Some((module, part)) = module_and_part(name) else {
                unsupported.push(name.to_string());
                continue;
            };
            let view = st.tensor(name).map_err(|e| format(e.to_string()))?;
            let shape = view.shape().to_vec();
            // Some trainers store `alpha` as an integer; A1111 reads it with `.item()`.
            let integer_alpha = || match (part, view.dtype()) {
                (Part::Alpha, safetensors::Dtype::I64) => view
                    .data()
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map(|b| vec![i64::from_le_bytes(b) as f32]),
                (Part::Alpha, safetensors::Dtype::I32) => view
                    .data()
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .map(|b| vec![i32::from_le_bytes(b) as f32]),
                _ => None,
            };
            let values =
                floats_of(&view)
                    .or_else(integer_alpha)
                    .ok_or_else(|| LoraError::Shape {
                        path: path.to_owned(),
                        key: name.to_string(),
                        shape: shape.clone(),
                        reason: format!("{:?} is not a float type", view.dtype()),
                    })?;
            let slot = match part {
                Part::Down => 0,
                Part::Up => 1,
                Part::Alpha => 2,
            };
            parts.entry(module).or_default()[slot] = Some(LoraTensor { shape, values });
        }
        // A module with a CP-decomposed middle (`lora_mid`) or DoRA's magnitude (`dora_scale`)
        // is not a plain LoRA: applying its down and up alone would be wrong, so all of it is
        // left out.
        let other_kinds: Vec<String> = unsupported
            .iter()
            .filter_map(|key| {
                key.strip_suffix(".lora_mid.weight")
                    .or_else(|| key.strip_suffix(".dora_scale"))
            })
            .map(str::to_owned)
            .collect();
        unsupported.sort();
        let mut modules = BTreeMap::new();
        for (name, [down, up, alpha]) in parts {
            if other_kinds.contains(&name) {
                unsupported.push(name);
                continue;
            }
            let (Some(down), Some(up)) = (down, up) else {
                // An alpha alone, or half a pair: A1111 cannot use it either.
                unsupported.push(name);
                continue;
            };
            let module = LoraModule {
                down,
                up,
                alpha: alpha.and_then(|a| a.values.first().copied()),
            };
            check(path, &name, &module)?;
            modules.insert(name, module);
        }
        Ok(Self {
            path: path.to_owned(),
            modules,
            unsupported,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The modules, by kohya name (`lora_unet_…`, `lora_te_…`).
    pub fn modules(&self) -> &BTreeMap<String, LoraModule> {
        &self.modules
    }

    /// Keys (and incomplete modules) this reader does not apply: other network kinds.
    pub fn unsupported(&self) -> &[String] {
        &self.unsupported
    }
}

/// The module (kohya name) and part a key holds; `None` for keys of other network kinds.
fn module_and_part(key: &str) -> Option<(String, Part)> {
    const SUFFIXES: [(&str, Part); 11] = [
        (".lora_down.weight", Part::Down),
        (".lora_up.weight", Part::Up),
        (".alpha", Part::Alpha),
        (".lora_A.weight", Part::Down),
        (".lora_B.weight", Part::Up),
        (".lora_linear_layer.down.weight", Part::Down),
        (".lora_linear_layer.up.weight", Part::Up),
        ("_lora.down.weight", Part::Down),
        ("_lora.up.weight", Part::Up),
        (".lora.down.weight", Part::Down),
        (".lora.up.weight", Part::Up),
    ];
    let (stem, part) = SUFFIXES
        .iter()
        .find_map(|(suffix, part)| key.strip_suffix(suffix).map(|stem| (stem, *part)))?;
    let module = if stem.starts_with("lora_unet_") || stem.starts_with("lora_te_") {
        stem.to_string()
    } else if let Some(path) = stem.strip_prefix("unet.") {
        // diffusers ≤ 0.20 named processor weights `…attn1.processor.to_q_lora`, and its
        // `to_out_lora` is the layer `to_out.0`.
        let path = path.replace(".processor.", ".");
        let path = match path.strip_suffix(".to_out") {
            Some(attention) => format!("{attention}.to_out.0"),
            None => path,
        };
        format!("lora_unet_{}", path.replace('.', "_"))
    } else if let Some(path) = stem.strip_prefix("text_encoder.") {
        let path = path.strip_prefix("text_model.").unwrap_or(path);
        // The same era's text-encoder keys used the UNet's names (`self_attn.to_q_lora`).
        let path = [
            (".to_q", ".q_proj"),
            (".to_k", ".k_proj"),
            (".to_v", ".v_proj"),
            (".to_out", ".out_proj"),
        ]
        .iter()
        .find_map(|(old, new)| path.strip_suffix(old).map(|p| format!("{p}{new}")))
        .unwrap_or_else(|| path.to_owned());
        format!("lora_te_text_model_{}", path.replace('.', "_"))
    } else {
        return None;
    };
    Some((module, part))
}

/// Down, up and alpha fit together: ranks agree, the up projection is 1×1, alpha is one
/// finite number, every value finite.
fn check(path: &Path, name: &str, module: &LoraModule) -> Result<()> {
    let fail = |tensor: &LoraTensor, reason: &str| LoraError::Shape {
        path: path.to_owned(),
        key: name.to_string(),
        shape: tensor.shape.clone(),
        reason: reason.to_string(),
    };
    let (down, up) = (&module.down, &module.up);
    if !matches!(down.shape.len(), 2 | 4) || down.shape.contains(&0) {
        return Err(fail(
            down,
            "lora_down must be [rank, in] or [rank, in, kh, kw]",
        ));
    }
    let up_is_1x1 = matches!(up.shape[..], [_, _] | [_, _, 1, 1]);
    if !up_is_1x1 || up.shape[0] == 0 {
        return Err(fail(up, "lora_up must be [out, rank] or [out, rank, 1, 1]"));
    }
    if up.shape[1] != down.shape[0] {
        return Err(fail(up, "lora_up's rank differs from lora_down's"));
    }
    if down.values.iter().chain(&up.values).any(|v| !v.is_finite())
        || module.alpha.is_some_and(|a| !a.is_finite())
    {
        return Err(fail(down, "holds a value that is not finite"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layout_names_the_same_module() {
        let kohya = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q";
        for key in [
            format!("{kohya}.lora_down.weight"),
            "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight"
                .to_string(),
            "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.down.weight"
                .to_string(),
        ] {
            assert_eq!(module_and_part(&key), Some((kohya.to_string(), Part::Down)), "{key}");
        }
        let te = "lora_te_text_model_encoder_layers_0_self_attn_q_proj";
        for key in [
            "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_B.weight",
            "text_encoder.encoder.layers.0.self_attn.q_proj.lora_B.weight",
        ] {
            assert_eq!(
                module_and_part(key),
                Some((te.to_string(), Part::Up)),
                "{key}"
            );
        }
        // The older diffusers layouts.
        assert_eq!(
            module_and_part(
                "unet.mid_block.attentions.0.transformer_blocks.0.attn2.processor.to_out_lora.up.weight"
            ),
            Some((
                "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_out_0".into(),
                Part::Up
            ))
        );
        assert_eq!(
            module_and_part(
                "text_encoder.text_model.encoder.layers.1.self_attn.to_k_lora.down.weight"
            ),
            Some((
                "lora_te_text_model_encoder_layers_1_self_attn_k_proj".into(),
                Part::Down
            ))
        );
        assert_eq!(
            module_and_part(
                "text_encoder.text_model.encoder.layers.1.mlp.fc1.lora_linear_layer.up.weight"
            ),
            Some((
                "lora_te_text_model_encoder_layers_1_mlp_fc1".into(),
                Part::Up
            ))
        );
        assert_eq!(module_and_part("lora_unet_x.hada_w1_a"), None);
        assert_eq!(
            module_and_part("lora_te_x.alpha"),
            Some(("lora_te_x".to_string(), Part::Alpha))
        );
    }
}
