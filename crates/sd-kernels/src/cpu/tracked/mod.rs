//! The CPU kernels as operations of burn's autodiff graph, for training on the CPU backend
//! (`flex`): the attention ([`tracked_attention`]), the GEGLU gate ([`tracked_geglu`]),
//! GroupNorm with its SiLU ([`tracked_group_norm`]) and the frozen-weight convolution
//! ([`tracked_conv2d`]).
//!
//! Written with burn's own ops, attention under autodiff keeps a `[queries, keys]` tensor per
//! head for its backward pass: 64 MiB per head of a 64×64 latent's self-attention, 2.5 GiB
//! for SD 1.5's five full-resolution self-attentions in one 512² training step. Here the
//! forward pass is [`crate::cpu::attention::attention`], which also returns each query row's
//! log-sum-exp, and the operation registers a backward step (burn's [`Backward`](burn::backend::autodiff::ops::Backward)) that keeps
//! only `q`, `k`, `v`, the output and the log-sum-exp — `O(tokens × head_dim)` — and
//! recomputes the softmax block by block ([`crate::cpu::attention::attention_backward`]).
//!
//! Likewise burn's GEGLU gate keeps each intermediate of its `erf` for the backward pass;
//! [`tracked_geglu`] keeps the projection alone and recomputes the rest
//! ([`crate::cpu::geglu::geglu_backward`]), and GroupNorm + SiLU keeps its input and two numbers
//! per group instead of about four input-sized tensors ([`crate::cpu::group_norm`]). burn's
//! `conv2d` keeps its input whenever it is tracked, for a weight gradient that a frozen
//! model never asks for; [`tracked_conv2d`] keeps nothing but the weight the module holds
//! anyway, and its backward pass is burn's own input gradient (a transposed convolution).
//!
//! burn 0.22 reaches a backend's primitives through `Tensor::try_into_primitive` (the
//! `extension` feature): an autodiff tensor on `flex` is an `AutodiffTensor<Flex>`, whose
//! node links the new operation into the graph.

mod attention;
mod conv;
mod geglu;
mod group_norm;

pub(crate) use self::attention::tracked_attention;
pub(crate) use self::conv::{conv_options, tracked_conv2d};
pub(crate) use self::geglu::tracked_geglu;
pub(crate) use self::group_norm::tracked_group_norm;
