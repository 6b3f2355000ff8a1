//! The feed-forward block: transformers' `CLIPMLP` (`mlp.fc1`, `mlp.fc2`; OpenCLIP's
//! `mlp.c_fc`, `mlp.c_proj`).

use burn::{
    module::Module,
    nn::{Linear, LinearConfig},
    tensor::{Device, Tensor, activation},
};

use crate::config::{ClipTextConfig, HiddenAct};

/// `fc2(act(fc1(x)))`.
#[derive(Module, Debug)]
pub struct ClipMlp {
    /// `hidden_size → intermediate_size`.
    pub fc1: Linear,
    /// `intermediate_size → hidden_size`.
    pub fc2: Linear,
    #[module(skip)]
    act: HiddenAct,
}

impl ClipMlp {
    pub(crate) fn new(config: &ClipTextConfig, device: &Device) -> Self {
        Self {
            fc1: LinearConfig::new(config.hidden_size, config.intermediate_size).init(device),
            fc2: LinearConfig::new(config.intermediate_size, config.hidden_size).init(device),
            act: config.hidden_act,
        }
    }

    /// # Shapes
    /// - input and output: `[batch, seq_len, hidden_size]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = self.fc1.forward(x);
        let h = match self.act {
            // OpenAI CLIP's approximation: x * sigmoid(1.702 x).
            HiddenAct::QuickGelu => {
                sd_kernels::precision::in_f32(h, |h| h.clone() * activation::sigmoid(h * 1.702))
            }
            HiddenAct::Gelu => sd_kernels::gelu(h),
        };
        self.fc2.forward(h)
    }
}
