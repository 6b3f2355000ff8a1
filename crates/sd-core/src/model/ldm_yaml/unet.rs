//! `unet_config` → diffusers' `UNet2DConditionModel` config, with LDM's head-count rule.

use sd_unet::config::{DownBlockType, UpBlockType};
use sd_unet::{PerBlock, UNetConfig};

use super::node::{Field, Node, Parsed, Problem};
use super::{LDM_CHANNEL_MULT, LDM_NORM_GROUPS};
use crate::checkpoint::ModelFamily;

/// `unet_config.target`.
const UNET_MODEL: &str = "ldm.modules.diffusionmodules.openaimodel.UNetModel";

/// `unet_config` → diffusers' `UNet2DConditionModel` config, on top of the family's preset
/// (for what LDM does not configure: sample size, f32 attention of SD 2.x).
pub(super) fn unet(config: &Node<'_>, family: ModelFamily) -> Parsed<UNetConfig> {
    let target = config.require("target")?;
    if target.str()? != UNET_MODEL {
        return Err(target.unsupported(&format!("only {UNET_MODEL}")).into());
    }
    let p = config.require("params")?;
    for (key, what) in [
        ("num_classes", "class-conditional UNets"),
        ("adm_in_channels", "extra (ADM) conditioning"),
        ("n_embed", "codebook outputs"),
        ("num_attention_blocks", "per-level attention block counts"),
    ] {
        if let Some(node) = p.get(key) {
            return Err(node.unsupported(what).into());
        }
    }
    p.refuse_unless(
        "use_spatial_transformer",
        |v| v.bool(),
        true,
        "a UNet without cross-attention",
    )?;
    if p.get("use_spatial_transformer").is_none() {
        return Err(format!(
            "`{}.use_spatial_transformer` is missing: LDM's default (false) builds a UNet \
             without cross-attention, which is not supported",
            p.path
        )
        .into());
    }
    p.refuse_unless(
        "use_scale_shift_norm",
        |v| v.bool(),
        false,
        "scale-shift time conditioning",
    )?;
    p.refuse_unless(
        "resblock_updown",
        |v| v.bool(),
        false,
        "resnet up/downsampling",
    )?;
    p.refuse_unless(
        "conv_resample",
        |v| v.bool(),
        true,
        "resampling without convolution",
    )?;
    p.refuse_unless("dims", |v| v.positive(), 2, "a UNet that is not 2-d")?;
    if let Some(node) = p.get("disable_self_attentions")
        && node.bool_list()?.contains(&true)
    {
        return Err(node
            .unsupported("attention layers without self-attention")
            .into());
    }
    let model_channels = p.require("model_channels")?.positive()?;
    let channel_mult = p
        .get("channel_mult")
        .map_or(Ok(LDM_CHANNEL_MULT.to_vec()), |n| n.usize_list())?;
    let block_out_channels: Vec<usize> = channel_mult
        .iter()
        .map(|m| model_channels.saturating_mul(*m))
        .collect();
    let attention_resolutions = p.require("attention_resolutions")?.usize_list()?;
    // As diffusers: level i works at downsampling factor 2^i and has attention when that
    // factor is listed; the up path mirrors it.
    let factors: Vec<usize> = (0..block_out_channels.len())
        .map(|i| {
            u32::try_from(i)
                .ok()
                .and_then(|i| 1usize.checked_shl(i))
                .unwrap_or(usize::MAX)
        })
        .collect();
    let has_attention = |factor: &usize| attention_resolutions.contains(factor);
    let down_block_types = factors
        .iter()
        .map(|f| {
            if has_attention(f) {
                DownBlockType::CrossAttnDownBlock2D
            } else {
                DownBlockType::DownBlock2D
            }
        })
        .collect();
    let up_block_types = factors
        .iter()
        .rev()
        .map(|f| {
            if has_attention(f) {
                UpBlockType::CrossAttnUpBlock2D
            } else {
                UpBlockType::UpBlock2D
            }
        })
        .collect();
    let heads = heads(&p, &block_out_channels)?;
    let transformer_layers_per_block = match p.get("transformer_depth") {
        None => PerBlock::All(1),
        Some(node) if node.value.is_sequence() => PerBlock::Each(node.usize_list()?),
        Some(node) => PerBlock::All(node.positive()?),
    };
    let context = p.require("context_dim")?;
    let cross_attention_dim = if context.value.is_sequence() {
        let dims = context.usize_list()?;
        match dims.split_first() {
            Some((first, rest)) if rest.iter().all(|d| d == first) => *first,
            _ => {
                return Err(context
                    .unsupported("different context widths per level")
                    .into());
            }
        }
    } else {
        context.positive()?
    };
    let layers = p.require("num_res_blocks")?;
    if layers.value.is_sequence() {
        return Err(layers.unsupported("a resnet count per level").into());
    }
    let preset = match family {
        ModelFamily::Sd1 => UNetConfig::sd15(),
        ModelFamily::Sd2 => UNetConfig::sd21(),
    };
    let config = UNetConfig {
        in_channels: p.require("in_channels")?.positive()?,
        out_channels: p.require("out_channels")?.positive()?,
        down_block_types,
        up_block_types,
        block_out_channels,
        layers_per_block: layers.positive()?,
        cross_attention_dim,
        transformer_layers_per_block,
        heads,
        num_attention_heads: None,
        use_linear_projection: p
            .get("use_linear_in_transformer")
            .map_or(Ok(false), |n| n.bool())?,
        norm_num_groups: p
            .get("norm_num_groups")
            .map_or(Ok(LDM_NORM_GROUPS), |n| n.positive())?,
        ..preset
    };
    config.validate().map_err(|e| {
        Problem::caused(
            format!("`{}` describes a UNet this crate cannot build", p.path),
            e,
        )
    })?;
    Ok(config)
}

/// Heads per level, as LDM's `UNetModel` computes them: `channels / num_head_channels` when
/// `num_head_channels` is set (not -1), else `num_heads` everywhere.
fn heads(p: &Node<'_>, block_out_channels: &[usize]) -> Field<PerBlock<usize>> {
    let head_channels = p.get("num_head_channels");
    if let Some(node) = &head_channels
        && node.int()? != -1
    {
        let width = node.positive()?;
        return block_out_channels
            .iter()
            .map(|c| {
                (c % width == 0).then_some(c / width).ok_or_else(|| {
                    node.unsupported(&format!("heads that do not divide {c} channels"))
                })
            })
            .collect::<Field<Vec<_>>>()
            .map(PerBlock::Each);
    }
    match p.get("num_heads") {
        Some(node) if node.int()? != -1 => Ok(PerBlock::All(node.positive()?)),
        _ => Err(format!(
            "`{}` needs `num_heads` or `num_head_channels` (neither is -1)",
            p.path
        )),
    }
}
