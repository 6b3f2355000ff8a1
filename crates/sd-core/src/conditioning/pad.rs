//! Cond and uncond of different chunk counts (`modules/sd_samplers_cfg_denoiser.py`).
//!
//! By default A1111 does not pad them: when the prompt and the negative prompt have different
//! lengths, the UNet runs on cond and uncond in separate forwards. Two settings pad instead
//! (both off by default, both change the image): "Pad prompt/negative prompt"
//! (`pad_cond_uncond`, with the empty prompt's encoding) and the pre-1.6 DDIM behaviour
//! (`pad_cond_uncond_v0`, repeating uncond's last vector or cutting it).

use burn::tensor::Tensor;

/// How to make cond and uncond the same length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CondUncondPadding {
    /// A1111's default: no padding; the caller runs separate UNet forwards when the token
    /// counts differ.
    #[default]
    Off,
    /// `pad_cond_uncond`: the shorter one gets whole copies of the empty prompt's encoding.
    EmptyPrompt,
    /// `pad_cond_uncond_v0`: uncond repeats its last vector up to cond's length, or is cut to
    /// it.
    LastVector,
}

impl CondUncondPadding {
    /// Applies this padding (`empty` is the encoding of `""`, needed for
    /// [`EmptyPrompt`](Self::EmptyPrompt)). Equal lengths are returned unchanged.
    ///
    /// # Shapes
    /// - `cond`: `[b_c, t_c, hidden_size]`, `uncond`: `[b_u, t_u, hidden_size]`
    /// - `empty`: `[1, 77, hidden_size]`
    /// - output: the same batch sizes, both with `max(t_c, t_u)` tokens, except
    ///   [`Off`](Self::Off) (unchanged) and [`LastVector`](Self::LastVector) (`t_c`)
    pub fn apply(
        self,
        cond: Tensor<3>,
        uncond: Tensor<3>,
        empty: &Tensor<3>,
    ) -> (Tensor<3>, Tensor<3>) {
        if cond.dims()[1] == uncond.dims()[1] {
            return (cond, uncond);
        }
        match self {
            Self::Off => (cond, uncond),
            Self::EmptyPrompt => pad_cond_uncond(cond, uncond, empty),
            Self::LastVector => pad_cond_uncond_v0(cond, uncond),
        }
    }
}

/// `CFGDenoiser.pad_cond_uncond`: the shorter of cond and uncond gets
/// `(t_c - t_u) / 77` copies of `empty` appended (Python's floor division).
///
/// # Shapes
/// - `cond`: `[b_c, t_c, hidden]`, `uncond`: `[b_u, t_u, hidden]`, `empty`: `[1, 77, hidden]`
/// - output: both with `max(t_c, t_u)` tokens when the difference is a multiple of 77
pub fn pad_cond_uncond(
    cond: Tensor<3>,
    uncond: Tensor<3>,
    empty: &Tensor<3>,
) -> (Tensor<3>, Tensor<3>) {
    let per = empty.dims()[1].max(1) as i64;
    let diff = cond.dims()[1] as i64 - uncond.dims()[1] as i64;
    let repeats = diff.div_euclid(per);
    if repeats < 0 {
        (
            pad_cond(cond, repeats.unsigned_abs() as usize, empty),
            uncond,
        )
    } else if repeats > 0 {
        (cond, pad_cond(uncond, repeats as usize, empty))
    } else {
        (cond, uncond)
    }
}

/// `pad_cond`: `tensor` with `repeats` copies of `empty` appended along the tokens, for every
/// sequence of the batch.
fn pad_cond(tensor: Tensor<3>, repeats: usize, empty: &Tensor<3>) -> Tensor<3> {
    let b = tensor.dims()[0];
    let pad = empty.clone().repeat_dim(0, b).repeat_dim(1, repeats);
    Tensor::cat(vec![tensor, pad], 1)
}

/// `CFGDenoiser.pad_cond_uncond_v0`: uncond repeats its last vector up to cond's token count,
/// or is cut to it; cond is unchanged.
///
/// # Shapes
/// - `cond`: `[b_c, t_c, hidden]`, `uncond`: `[b_u, t_u, hidden]`
/// - output: `cond`, and uncond as `[b_u, t_c, hidden]`
pub fn pad_cond_uncond_v0(cond: Tensor<3>, uncond: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
    let t_c = cond.dims()[1];
    let [b, t_u, hidden] = uncond.dims();
    let uncond = if t_u < t_c && t_u > 0 {
        let last = uncond
            .clone()
            .slice([0..b, t_u - 1..t_u, 0..hidden])
            .repeat_dim(1, t_c - t_u);
        Tensor::cat(vec![uncond, last], 1)
    } else if t_u > t_c {
        uncond.slice([0..b, 0..t_c, 0..hidden])
    } else {
        uncond
    };
    (cond, uncond)
}
