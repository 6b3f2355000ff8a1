//! The key table of a diffusers `text_encoder/` (transformers' `CLIPTextModel`).
//!
//! | file key | model path | why |
//! |---|---|---|
//! | `text_model.X` | `X` | transformers 4 and published checkpoints nest the model under `text_model.`; transformers 5 saves without it: both load |
//! | `[text_model.]embeddings.position_ids` | skipped | an int64 buffer `arange(77)`, positions are implied |
//!
//! Every other key is the model path itself (`embeddings.token_embedding.weight`,
//! `encoder.layers.{i}.self_attn.q_proj.weight`, `final_layer_norm.bias`, ...).

use super::{KeyTable, Skip};

/// Renames, applied in order.
const RENAMES: &[(&str, &str)] = &[
    // transformers 4 / published SD folders: `text_model.` prefix; transformers 5: none.
    (r"^text_model\.", ""),
];

/// Keys deliberately not loaded.
const SKIPS: &[Skip] = &[Skip {
    // Older transformers saved the position-id buffer (int64 `arange(77)`) with the weights.
    matches: |name, _| name == "embeddings.position_ids",
    reason: "int64 position_ids buffer: positions are implied by the sequence",
}];

pub(crate) fn table() -> KeyTable {
    KeyTable {
        prefix: "",
        renames: RENAMES,
        skips: SKIPS,
        split_in_proj: false,
    }
}
