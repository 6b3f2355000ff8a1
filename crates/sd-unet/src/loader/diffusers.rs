//! Key table of diffusers' `unet/diffusion_pytorch_model.safetensors`.
//!
//! The model's fields are named after these keys, so only the `ModuleList`s that hold
//! parameterless layers next to weighted ones need a rename. Each row is `(regex,
//! replacement)` for burn-store's `KeyRemapper`, applied to every key in order.

/// diffusers key → model path.
pub const KEY_TABLE: &[(&str, &str)] = &[
    // `Attention.to_out` is `ModuleList[Linear, Dropout]`: only `to_out.0` has weights.
    (r"\.to_out\.0\.", ".to_out."),
    // `FeedForward.net` is `ModuleList[GEGLU, Dropout, Linear]`; Rust fields cannot be
    // named `0` or `2`.
    (r"\.ff\.net\.0\.", ".ff.net_0."),
    (r"\.ff\.net\.2\.", ".ff.net_2."),
];
