//! Key table of single-file (original CompVis LDM / A1111) checkpoints:
//! `model.diffusion_model.*`, as `ldm/modules/diffusionmodules/openaimodel.py` names it.
//!
//! LDM numbers the UNet's layers as flat `nn.Sequential` lists, so where a key goes depends
//! on `layers_per_block` (L) and on which blocks have attention: the table is built from the
//! config. It is the inverse of the project's `tools/sdtools/ldm_keys.py::unet_to_ldm`, which
//! `tools/check_single_files.py` checks against diffusers' own single-file loader.
//!
//! | LDM | diffusers |
//! |---|---|
//! | `time_embed.0`, `time_embed.2` | `time_embedding.linear_1`, `.linear_2` |
//! | `input_blocks.0.0` | `conv_in` |
//! | `input_blocks.{i(L+1)+j+1}.0` / `.1` | `down_blocks.i.resnets.j` / `.attentions.j` |
//! | `input_blocks.{(i+1)(L+1)}.0.op` | `down_blocks.i.downsamplers.0.conv` |
//! | `middle_block.0` / `.1` / `.2` | `mid_block.resnets.0` / `.attentions.0` / `.resnets.1` |
//! | `output_blocks.{i(L+1)+j}.0` / `.1` | `up_blocks.i.resnets.j` / `.attentions.j` |
//! | `output_blocks.{i(L+1)+L}.{1, or 2 with attention}.conv` | `up_blocks.i.upsamplers.0.conv` |
//! | `out.0`, `out.2` | `conv_norm_out`, `conv_out` |
//!
//! Inside a resnet: `in_layers.0` = `norm1`, `in_layers.2` = `conv1`, `emb_layers.1` =
//! `time_emb_proj`, `out_layers.0` = `norm2`, `out_layers.3` = `conv2`, `skip_connection` =
//! `conv_shortcut`. Transformers keep diffusers' names (`norm`, `proj_in`,
//! `transformer_blocks.k.{norm1,attn1,...}`); the diffusers table then applies.

use crate::config::UNetConfig;

/// Prefix of the UNet's keys in a single-file checkpoint (the file also holds the text
/// encoder's and the VAE's).
pub const PREFIX: &str = "model.diffusion_model.";

/// Inside a resnet: LDM's `nn.Sequential` indices → diffusers' names.
const RESNET: &[(&str, &str)] = &[
    // in_layers = [GroupNorm, SiLU, Conv2d]
    ("in_layers.0", "norm1"),
    ("in_layers.2", "conv1"),
    // emb_layers = [SiLU, Linear]
    ("emb_layers.1", "time_emb_proj"),
    // out_layers = [GroupNorm, SiLU, Dropout, Conv2d]
    ("out_layers.0", "norm2"),
    ("out_layers.3", "conv2"),
    ("skip_connection", "conv_shortcut"),
];

/// `(regex, replacement)` rows, applied in order, mapping every LDM key of this
/// configuration's UNet to the model path in diffusers naming.
pub fn key_table(config: &UNetConfig) -> Vec<(String, String)> {
    let per = config.layers_per_block + 1;
    let layers = config.layers_per_block;
    let n = config.down_block_types.len();
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut prefix = |from: String, to: String| {
        rows.push((
            format!("^{}{}\\.", regex_escape(PREFIX), regex_escape(&from)),
            format!("{to}."),
        ));
    };
    prefix("time_embed.0".into(), "time_embedding.linear_1".into());
    prefix("time_embed.2".into(), "time_embedding.linear_2".into());
    prefix("input_blocks.0.0".into(), "conv_in".into());
    prefix("out.0".into(), "conv_norm_out".into());
    prefix("out.2".into(), "conv_out".into());
    for (i, kind) in config.down_block_types.iter().enumerate() {
        for j in 0..layers {
            let k = i * per + j + 1;
            prefix(
                format!("input_blocks.{k}.0"),
                format!("down_blocks.{i}.resnets.{j}"),
            );
            if kind.has_attention() {
                prefix(
                    format!("input_blocks.{k}.1"),
                    format!("down_blocks.{i}.attentions.{j}"),
                );
            }
        }
        if i + 1 < n {
            prefix(
                format!("input_blocks.{}.0.op", (i + 1) * per),
                format!("down_blocks.{i}.downsamplers.0.conv"),
            );
        }
    }
    prefix("middle_block.0".into(), "mid_block.resnets.0".into());
    prefix("middle_block.1".into(), "mid_block.attentions.0".into());
    prefix("middle_block.2".into(), "mid_block.resnets.1".into());
    for (i, kind) in config.up_block_types.iter().enumerate() {
        for j in 0..per {
            let k = i * per + j;
            prefix(
                format!("output_blocks.{k}.0"),
                format!("up_blocks.{i}.resnets.{j}"),
            );
            if kind.has_attention() {
                prefix(
                    format!("output_blocks.{k}.1"),
                    format!("up_blocks.{i}.attentions.{j}"),
                );
            }
        }
        if i + 1 < n {
            // The upsampler shares the level's last `nn.Sequential` with its resnet (and
            // transformer, which pushes it from slot 1 to slot 2).
            let slot = if kind.has_attention() { 2 } else { 1 };
            prefix(
                format!("output_blocks.{}.{slot}.conv", i * per + layers),
                format!("up_blocks.{i}.upsamplers.0.conv"),
            );
        }
    }
    for (from, to) in RESNET {
        rows.push((
            format!(
                r"^((?:down_blocks|up_blocks)\.\d+\.resnets\.\d+|mid_block\.resnets\.\d+)\.{}\.",
                regex_escape(from)
            ),
            format!("${{1}}.{to}."),
        ));
    }
    rows
}

/// The LDM name (without [`PREFIX`]) of the diffusers-named UNet key `diffusers` in this
/// configuration: the inverse of [`key_table`]. `None` for a key this UNet does not have.
///
/// ```
/// use sd_unet::UNetConfig;
/// use sd_unet::loader::ldm::ldm_name;
/// let config = UNetConfig::sd15();
/// assert_eq!(
///     ldm_name(&config, "down_blocks.1.attentions.0.proj_in.weight").as_deref(),
///     Some("input_blocks.4.1.proj_in.weight")
/// );
/// assert_eq!(
///     ldm_name(&config, "mid_block.resnets.1.conv2.weight").as_deref(),
///     Some("middle_block.2.out_layers.3.weight")
/// );
/// ```
pub fn ldm_name(config: &UNetConfig, diffusers: &str) -> Option<String> {
    let per = config.layers_per_block + 1;
    let layers = config.layers_per_block;
    let n = config.down_block_types.len();
    let parts: Vec<&str> = diffusers.split('.').collect();
    let index = |s: &str| s.parse::<usize>().ok();
    // Inside a resnet, diffusers' layer name → LDM's `nn.Sequential` index.
    let resnet = |rest: &[&str]| -> Option<String> {
        let (first, tail) = rest.split_first()?;
        let (ldm, _) = RESNET.iter().find(|(_, to)| to == first)?;
        Some(
            std::iter::once(*ldm)
                .chain(tail.iter().copied())
                .collect::<Vec<_>>()
                .join("."),
        )
    };
    let join = |rest: &[&str]| rest.join(".");
    Some(match parts.as_slice() {
        ["time_embedding", "linear_1", rest @ ..] => format!("time_embed.0.{}", join(rest)),
        ["time_embedding", "linear_2", rest @ ..] => format!("time_embed.2.{}", join(rest)),
        ["conv_in", rest @ ..] => format!("input_blocks.0.0.{}", join(rest)),
        ["conv_norm_out", rest @ ..] => format!("out.0.{}", join(rest)),
        ["conv_out", rest @ ..] => format!("out.2.{}", join(rest)),
        ["down_blocks", i, kind, j, rest @ ..] => {
            let (i, j) = (index(i)?, index(j)?);
            if i >= n {
                return None;
            }
            match *kind {
                "resnets" if j < layers => {
                    format!("input_blocks.{}.0.{}", i * per + j + 1, resnet(rest)?)
                }
                "attentions" if j < layers && config.down_block_types[i].has_attention() => {
                    format!("input_blocks.{}.1.{}", i * per + j + 1, join(rest))
                }
                "downsamplers" if j == 0 && i + 1 < n => match rest {
                    ["conv", rest @ ..] => {
                        format!("input_blocks.{}.0.op.{}", (i + 1) * per, join(rest))
                    }
                    _ => return None,
                },
                _ => return None,
            }
        }
        ["mid_block", "resnets", j, rest @ ..] if index(j)? < 2 => {
            format!("middle_block.{}.{}", 2 * index(j)?, resnet(rest)?)
        }
        ["mid_block", "attentions", "0", rest @ ..] => format!("middle_block.1.{}", join(rest)),
        ["up_blocks", i, kind, j, rest @ ..] => {
            let (i, j) = (index(i)?, index(j)?);
            let has_attention = config.up_block_types.get(i)?.has_attention();
            match *kind {
                "resnets" if j < per => {
                    format!("output_blocks.{}.0.{}", i * per + j, resnet(rest)?)
                }
                "attentions" if j < per && has_attention => {
                    format!("output_blocks.{}.1.{}", i * per + j, join(rest))
                }
                "upsamplers" if j == 0 && i + 1 < n => match rest {
                    ["conv", rest @ ..] => {
                        let slot = if has_attention { 2 } else { 1 };
                        format!(
                            "output_blocks.{}.{slot}.conv.{}",
                            i * per + layers,
                            join(rest)
                        )
                    }
                    _ => return None,
                },
                _ => return None,
            }
        }
        _ => return None,
    })
}

/// Escapes the regex metacharacters that occur in state-dict keys (only `.`).
fn regex_escape(key: &str) -> String {
    key.replace('.', r"\.")
}
