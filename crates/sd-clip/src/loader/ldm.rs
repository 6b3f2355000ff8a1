//! The key tables of single-file (LDM / A1111) checkpoints, whose text encoder sits under
//! `cond_stage_model.`. Which table applies is read off the keys.
//!
//! **SD 1.x** (OpenAI CLIP through transformers, `cond_stage_model.transformer.`):
//!
//! | file key | model path | why |
//! |---|---|---|
//! | `cond_stage_model.transformer.text_model.X` | `X` | transformers' `CLIPTextModel` keys under LDM's prefix |
//! | `cond_stage_model.transformer.X` (no `text_model.`) | `X` | files saved with transformers < 4.x, before the `text_model` nesting |
//! | `…embeddings.position_ids` | skipped | int64 `arange(77)` buffer most SD 1.x files carry |
//!
//! **SD 2.x** (OpenCLIP, `cond_stage_model.model.`):
//!
//! | file key | model path | why |
//! |---|---|---|
//! | `token_embedding.weight` | `embeddings.token_embedding.weight` | |
//! | `positional_embedding` | `embeddings.position_embedding.weight` | a bare `[77, width]` parameter in OpenCLIP |
//! | `transformer.resblocks.{i}.ln_1.*` / `ln_2.*` | `encoder.layers.{i}.layer_norm1.*` / `layer_norm2.*` | |
//! | `transformer.resblocks.{i}.attn.in_proj_{weight,bias}` | `encoder.layers.{i}.self_attn.{q,k,v}_proj.*` | fused `[3·width, width]`, split in three |
//! | `transformer.resblocks.{i}.attn.out_proj.*` | `encoder.layers.{i}.self_attn.out_proj.*` | |
//! | `transformer.resblocks.{i}.mlp.c_fc.*` / `c_proj.*` | `encoder.layers.{i}.mlp.fc1.*` / `fc2.*` | |
//! | `ln_final.*` | `final_layer_norm.*` | |
//! | `text_projection`, `logit_scale` | skipped | CLIP's contrastive head, not part of the text model |
//! | `transformer.resblocks.{n}.*`, `n = num_hidden_layers` | skipped | ViT-H's 24th layer: SD 2.x uses the penultimate layer, so diffusers keeps 23 |

use super::{KeyTable, Skip, layer_at_or_after};
use crate::error::{ClipError, Result};

const OPENAI_PREFIX: &str = "cond_stage_model.transformer.";
const OPEN_CLIP_PREFIX: &str = "cond_stage_model.model.";

/// SD 1.x renames, applied in order (the second only fires when the first did not).
const OPENAI_RENAMES: &[(&str, &str)] = &[
    // LDM's prefix plus transformers' `text_model.` nesting.
    (r"^cond_stage_model\.transformer\.text_model\.", ""),
    // Files from transformers before the `text_model` nesting.
    (r"^cond_stage_model\.transformer\.", ""),
];

const OPENAI_SKIPS: &[Skip] = &[Skip {
    matches: |name, _| name == "embeddings.position_ids",
    reason: "int64 position_ids buffer: positions are implied by the sequence",
}];

/// SD 2.x renames, applied in order: strip the prefix, then OpenCLIP names → transformers
/// names.
const OPEN_CLIP_RENAMES: &[(&str, &str)] = &[
    (r"^cond_stage_model\.model\.", ""),
    (
        r"^token_embedding\.weight$",
        "embeddings.token_embedding.weight",
    ),
    // OpenCLIP keeps positions as a bare parameter, transformers as an nn.Embedding.
    (
        r"^positional_embedding$",
        "embeddings.position_embedding.weight",
    ),
    (r"^ln_final\.", "final_layer_norm."),
    (r"^transformer\.resblocks\.", "encoder.layers."),
    (r"\.ln_1\.", ".layer_norm1."),
    (r"\.ln_2\.", ".layer_norm2."),
    (r"\.mlp\.c_fc\.", ".mlp.fc1."),
    (r"\.mlp\.c_proj\.", ".mlp.fc2."),
    (r"\.attn\.out_proj\.", ".self_attn.out_proj."),
    // torch.nn.MultiheadAttention's fused q/k/v; the loader splits it into q/k/v_proj.
    (r"\.attn\.in_proj_(weight|bias)$", ".self_attn.in_proj.$1"),
];

const OPEN_CLIP_SKIPS: &[Skip] = &[
    Skip {
        matches: |name, _| name == "text_projection" || name == "logit_scale",
        reason: "CLIP's contrastive head (text_projection, logit_scale): not part of the text model",
    },
    Skip {
        // Exactly the one layer after the configured ones: more would be a wrong config.
        matches: |name, config| {
            layer_at_or_after(name, config.num_hidden_layers)
                && !layer_at_or_after(name, config.num_hidden_layers + 1)
        },
        reason: "OpenCLIP ViT-H's last layer: SD 2.x conditions on the penultimate one, so the model keeps num_hidden_layers",
    },
];

/// The table for the file whose keys are `keys`.
pub(crate) fn table<'a>(keys: impl Iterator<Item = &'a str> + Clone) -> Result<KeyTable> {
    if keys.clone().any(|k| k.starts_with(OPEN_CLIP_PREFIX)) {
        Ok(KeyTable {
            prefix: OPEN_CLIP_PREFIX,
            renames: OPEN_CLIP_RENAMES,
            skips: OPEN_CLIP_SKIPS,
            split_in_proj: true,
        })
    } else if keys.clone().any(|k| k.starts_with(OPENAI_PREFIX)) {
        Ok(KeyTable {
            prefix: OPENAI_PREFIX,
            renames: OPENAI_RENAMES,
            skips: OPENAI_SKIPS,
            split_in_proj: false,
        })
    } else {
        Err(ClipError::Weights {
            format: "Ldm".into(),
            missing: vec![format!(
                "{OPENAI_PREFIX}* or {OPEN_CLIP_PREFIX}* (the file has no text encoder keys)"
            )],
            unused: Vec::new(),
            errors: Vec::new(),
        })
    }
}
