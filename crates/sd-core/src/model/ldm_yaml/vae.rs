//! `first_stage_config` → diffusers' `AutoencoderKL` config.

use sd_vae::AutoencoderKlConfig;

use super::node::{Node, Parsed, Problem};
use super::{LDM_CHANNEL_MULT, LDM_NORM_GROUPS};
use crate::checkpoint::ModelFamily;

/// `first_stage_config.target`.
const AUTOENCODER_KL: &str = "ldm.models.autoencoder.AutoencoderKL";

/// `first_stage_config` → diffusers' `AutoencoderKL` config.
pub(super) fn vae(
    config: &Node<'_>,
    scale_factor: Option<f64>,
    family: ModelFamily,
) -> Parsed<AutoencoderKlConfig> {
    let target = config.require("target")?;
    if target.str()? != AUTOENCODER_KL {
        return Err(target.unsupported(&format!("only {AUTOENCODER_KL}")).into());
    }
    let params = config.require("params")?;
    let dd = params.require("ddconfig")?;
    let z_channels = dd.require("z_channels")?.positive()?;
    let embed_dim = params.require("embed_dim")?;
    if embed_dim.positive()? != z_channels {
        return Err(embed_dim
            .unsupported(&format!(
                "diffusers' AutoencoderKL has one latent width: embed_dim must equal \
             z_channels ({z_channels})"
            ))
            .into());
    }
    dd.refuse_unless("double_z", |v| v.bool(), true, "a single-moment encoder")?;
    dd.refuse_unless(
        "resamp_with_conv",
        |v| v.bool(),
        true,
        "resampling without convolution",
    )?;
    dd.refuse_unless("use_linear_attn", |v| v.bool(), false, "linear attention")?;
    dd.refuse_unless("tanh_out", |v| v.bool(), false, "a tanh output")?;
    dd.refuse_unless(
        "give_pre_end",
        |v| v.bool(),
        false,
        "a decoder without output layers",
    )?;
    if let Some(node) = dd.get("attn_resolutions")
        && !node.usize_list()?.is_empty()
    {
        return Err(node
            .unsupported("attention inside the encoder/decoder levels")
            .into());
    }
    let mid_block_add_attention = match dd.get("attn_type") {
        None => true,
        Some(node) => match node.str()? {
            "vanilla" | "vanilla-xformers" => true,
            "none" => false,
            _ => return Err(node.unsupported("only vanilla attention (or none)").into()),
        },
    };
    let ch = dd.require("ch")?.positive()?;
    let ch_mult = dd
        .get("ch_mult")
        .map_or(Ok(LDM_CHANNEL_MULT.to_vec()), |n| n.usize_list())?;
    let levels = ch_mult.len();
    let preset = match family {
        ModelFamily::Sd1 => AutoencoderKlConfig::sd15(),
        ModelFamily::Sd2 => AutoencoderKlConfig::sd21(),
    };
    let config = AutoencoderKlConfig {
        in_channels: dd.require("in_channels")?.positive()?,
        out_channels: dd.require("out_ch")?.positive()?,
        down_block_types: vec![preset.down_block_types[0].clone(); levels],
        up_block_types: vec![preset.up_block_types[0].clone(); levels],
        // Saturating: an absurd width is refused by `validate`, not wrapped or panicked on.
        block_out_channels: ch_mult.iter().map(|m| ch.saturating_mul(*m)).collect(),
        layers_per_block: dd.require("num_res_blocks")?.positive()?,
        latent_channels: z_channels,
        norm_num_groups: dd
            .get("norm_num_groups")
            .map_or(Ok(LDM_NORM_GROUPS), |n| n.positive())?,
        scaling_factor: scale_factor.unwrap_or(preset.scaling_factor),
        mid_block_add_attention,
        ..preset
    };
    config.validate().map_err(|e| {
        Problem::caused(
            format!(
                "`{}` describes an autoencoder this crate cannot build",
                dd.path
            ),
            e,
        )
    })?;
    Ok(config)
}
