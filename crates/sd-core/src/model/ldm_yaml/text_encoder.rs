//! `cond_stage_config`: the family and the text encoder, whose size the yaml does not state
//! and the checkpoint's shapes give.

use std::collections::BTreeSet;

use sd_clip::ClipTextConfig;

use super::node::{Field, Node};
use crate::checkpoint::{ModelFamily, ldm_family};
use crate::model::architecture::{TensorShapes, family_label};

/// Class of `cond_stage_config.target` for SD 1.x (OpenAI CLIP ViT-L/14).
const FROZEN_CLIP: &str = "FrozenCLIPEmbedder";
/// Class of `cond_stage_config.target` for SD 2.x (OpenCLIP ViT-H/14).
const FROZEN_OPEN_CLIP: &str = "FrozenOpenCLIPEmbedder";
/// CLIP's attention head width (ViT-L/14 768 / 12, ViT-H/14 1024 / 16).
const CLIP_HEAD_WIDTH: usize = 64;

/// The family from `cond_stage_config.target`, and the text encoder from the preset and the
/// checkpoint's shapes.
pub(super) fn text_encoder(
    config: &Node<'_>,
    shapes: &TensorShapes,
) -> Field<(ModelFamily, ClipTextConfig)> {
    if config.value.is_string() {
        return Err(config.unsupported("a model without a text encoder"));
    }
    let target = config.require("target")?;
    let class = target.str()?.rsplit('.').next().unwrap_or_default();
    let (family, preset, default_layer) = match class {
        FROZEN_CLIP => (ModelFamily::Sd1, ClipTextConfig::sd15(), "last"),
        FROZEN_OPEN_CLIP => (ModelFamily::Sd2, ClipTextConfig::sd21(), "penultimate"),
        _ => {
            return Err(target.unsupported(
                "only FrozenCLIPEmbedder (SD 1.x) and FrozenOpenCLIPEmbedder (SD 2.x) text \
                 encoders",
            ));
        }
    };
    if let Some(layer) = config.get("params").and_then(|p| p.get("layer"))
        && layer.str()? != default_layer
    {
        return Err(layer.unsupported(&format!(
            "this family conditions on the `{default_layer}` layer here (CLIP skip is a \
             generation setting)"
        )));
    }
    if let Some(found) = ldm_family(shapes.keys().map(String::as_str))
        && found != family
    {
        return Err(format!(
            "`{}` is a SD {} text encoder but the checkpoint holds SD {} text encoder weights",
            target.path,
            family_label(family),
            family_label(found),
        ));
    }
    Ok((family, text_encoder_from_shapes(family, preset, shapes)))
}

/// The preset with the width, depth, MLP width, vocabulary and positions of the checkpoint's
/// text encoder (each kept from the preset when its tensor is absent).
fn text_encoder_from_shapes(
    family: ModelFamily,
    mut config: ClipTextConfig,
    shapes: &TensorShapes,
) -> ClipTextConfig {
    // (prefix, token embedding, positions, first MLP input projection, layer list, layers the
    // model keeps below the file's count)
    let (prefix, token, position, fc1, layers, dropped) = match family {
        ModelFamily::Sd1 => {
            let nested = "cond_stage_model.transformer.text_model.";
            let prefix = if shapes.keys().any(|k| k.starts_with(nested)) {
                nested
            } else {
                // transformers < 4 saved CLIPTextModel without the `text_model.` level.
                "cond_stage_model.transformer."
            };
            (
                prefix,
                "embeddings.token_embedding.weight",
                "embeddings.position_embedding.weight",
                "encoder.layers.0.mlp.fc1.weight",
                "encoder.layers.",
                0,
            )
        }
        // SD 2.x conditions on the penultimate layer: the model keeps one layer fewer.
        ModelFamily::Sd2 => (
            "cond_stage_model.model.",
            "token_embedding.weight",
            "positional_embedding",
            "transformer.resblocks.0.mlp.c_fc.weight",
            "transformer.resblocks.",
            1,
        ),
    };
    let shape = |name: &str| {
        shapes
            .get(&format!("{prefix}{name}"))
            .filter(|s| s.len() == 2)
            .map(|s| (s[0], s[1]))
    };
    if let Some((vocab, width)) = shape(token) {
        config.vocab_size = vocab;
        if width != config.hidden_size {
            config.hidden_size = width;
            config.num_attention_heads = if width >= CLIP_HEAD_WIDTH && width % CLIP_HEAD_WIDTH == 0
            {
                width / CLIP_HEAD_WIDTH
            } else {
                1
            };
        }
    }
    if let Some((positions, _)) = shape(position) {
        config.max_position_embeddings = positions;
    }
    if let Some((intermediate, _)) = shape(fc1) {
        config.intermediate_size = intermediate;
    }
    let layer_prefix = format!("{prefix}{layers}");
    let indices: BTreeSet<usize> = shapes
        .range(layer_prefix.clone()..)
        .map(|(name, _)| name)
        .take_while(|name| name.starts_with(&layer_prefix))
        .filter_map(|name| name[layer_prefix.len()..].split('.').next()?.parse().ok())
        .collect();
    if indices.len() > dropped {
        config.num_hidden_layers = indices.len() - dropped;
    }
    config
}
