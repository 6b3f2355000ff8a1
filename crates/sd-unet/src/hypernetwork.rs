//! A1111's hypernetworks inside the UNet: small residual MLPs that rewrite the key and value
//! inputs of every attention layer whose context has their width (A1111's
//! `modules/hypernetworks/hypernetwork.py`, `HypernetworkModule` and `apply_hypernetworks`).
//! Self-attention's context is its own input, so a hypernetwork with a module for 320 also
//! changes the self-attentions of 320-wide blocks, as in A1111.
//!
//! Each module computes `x + multiplier · mlp(x)`, `mlp` a chain of linear layers, each
//! optionally followed by an activation and a LayerNorm (dropout is for training only).
//! Several hypernetworks chain: each rewrites what the previous one made.

use burn::module::Module;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::Tensor;
use burn::tensor::activation;

use crate::attention::Attention;
use crate::unet_2d_condition::UNet2DConditionModel;

/// The activations A1111 offers (its `activation_dict`: the UI's names, `swish` being
/// PyTorch's `Hardswish`, and the lower-cased names of PyTorch's activation classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HypernetworkActivation {
    /// `relu`.
    Relu,
    /// `leakyrelu` (slope 0.01).
    LeakyRelu,
    /// `elu` (α = 1).
    Elu,
    /// `swish`, which A1111 maps to `torch.nn.Hardswish`; also `hardswish`.
    Hardswish,
    /// `tanh`.
    Tanh,
    /// `sigmoid`.
    Sigmoid,
    /// `gelu` (exact, erf).
    Gelu,
    /// `silu`.
    Silu,
    /// `mish`.
    Mish,
    /// `softplus` (β = 1; PyTorch's threshold of 20 above which it is the identity).
    Softplus,
    /// `relu6`.
    Relu6,
    /// `hardsigmoid`.
    Hardsigmoid,
    /// `softsign`.
    Softsign,
}

impl HypernetworkActivation {
    /// Every name [`parse`](Self::parse) takes (`linear` means none).
    pub const NAMES: [&'static str; 15] = [
        "linear",
        "relu",
        "leakyrelu",
        "elu",
        "swish",
        "hardswish",
        "tanh",
        "sigmoid",
        "gelu",
        "silu",
        "mish",
        "softplus",
        "relu6",
        "hardsigmoid",
        "softsign",
    ];

    /// The activation A1111's `activation_func` names: `Ok(None)` for `linear` (or none),
    /// `Err` with the name for one this crate does not implement.
    pub fn parse(name: Option<&str>) -> Result<Option<Self>, String> {
        Ok(Some(match name.unwrap_or("linear") {
            "linear" => return Ok(None),
            "relu" => Self::Relu,
            "leakyrelu" => Self::LeakyRelu,
            "elu" => Self::Elu,
            "swish" | "hardswish" => Self::Hardswish,
            "tanh" => Self::Tanh,
            "sigmoid" => Self::Sigmoid,
            "gelu" => Self::Gelu,
            "silu" => Self::Silu,
            "mish" => Self::Mish,
            "softplus" => Self::Softplus,
            "relu6" => Self::Relu6,
            "hardsigmoid" => Self::Hardsigmoid,
            "softsign" => Self::Softsign,
            other => return Err(other.to_owned()),
        }))
    }

    /// The activation of `x`.
    pub fn forward(self, x: Tensor<3>) -> Tensor<3> {
        match self {
            Self::Relu => activation::relu(x),
            Self::LeakyRelu => activation::leaky_relu(x, 0.01),
            // x above 0, eˣ − 1 below: each term is 0 on the other side.
            Self::Elu => x.clone().clamp_min(0.0) + (x.clamp_max(0.0).exp() - 1.0),
            Self::Hardswish => x.clone() * (x + 3.0).clamp(0.0, 6.0) / 6.0,
            Self::Tanh => x.tanh(),
            Self::Sigmoid => activation::sigmoid(x),
            Self::Gelu => sd_kernels::gelu(x),
            Self::Silu => activation::silu(x),
            Self::Mish => activation::mish(x),
            Self::Softplus => {
                let above = x.clone().greater_elem(20.0);
                activation::softplus(x.clone(), 1.0).mask_where(above, x)
            }
            Self::Relu6 => x.clamp(0.0, 6.0),
            Self::Hardsigmoid => ((x + 3.0) / 6.0).clamp(0.0, 1.0),
            Self::Softsign => x.clone() / (x.abs() + 1.0),
        }
    }
}

/// One linear layer of a [`HypernetworkModule`], with what follows it.
#[derive(Module, Debug)]
pub struct HypernetworkLayer {
    /// The linear layer.
    pub linear: Linear,
    /// The activation after it, if any.
    #[module(skip)]
    pub activation: Option<HypernetworkActivation>,
    /// The LayerNorm after the activation, if the hypernetwork has them.
    pub norm: Option<LayerNorm>,
    /// While training: the probability of dropping each output after the LayerNorm (A1111's
    /// `torch.nn.Dropout`, survivors scaled by `1 / (1 − p)`); 0 for use.
    #[module(skip)]
    pub dropout: f64,
}

/// A1111's `HypernetworkModule`: `x + multiplier · mlp(x)`.
#[derive(Module, Debug)]
pub struct HypernetworkModule {
    /// The MLP's layers, in order.
    pub layers: Vec<HypernetworkLayer>,
    /// The strength (`<hypernet:name:multiplier>`).
    pub multiplier: f32,
}

impl HypernetworkModule {
    /// # Shapes
    /// - `x`, output: `[batch, tokens, width]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let mut h = x.clone();
        for layer in &self.layers {
            h = sd_kernels::linear(&layer.linear, h);
            if let Some(activation) = layer.activation {
                h = activation.forward(h);
            }
            if let Some(norm) = &layer.norm {
                h = norm.forward(h);
            }
            if layer.dropout > 0.0 {
                h = dropout(h, layer.dropout);
            }
        }
        x + h.mul_scalar(self.multiplier)
    }
}

/// `torch.nn.Dropout(p)` in training mode: each element zeroed with probability `p`, the
/// others divided by `1 − p` (a mask from the backend's random generator).
fn dropout(x: Tensor<3>, p: f64) -> Tensor<3> {
    let keep = Tensor::<3>::random(
        x.shape(),
        burn::tensor::Distribution::Bernoulli(1.0 - p),
        &x.device(),
    );
    let keep = sd_kernels::precision::to_dtype(keep.mul_scalar(1.0 / (1.0 - p)), x.dtype());
    x * keep
}

/// The key and value modules of one hypernetwork for one width.
#[derive(Module, Debug)]
pub struct HypernetworkPair {
    /// Rewrites the key projection's input.
    pub key: HypernetworkModule,
    /// Rewrites the value projection's input.
    pub value: HypernetworkModule,
}

impl Attention {
    /// The key and value inputs for `context` after this layer's hypernetworks, in order.
    pub(crate) fn hypernetwork_contexts(&self, context: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
        let mut key = context.clone();
        let mut value = context;
        for pair in &self.hypernetworks {
            key = pair.key.forward(key);
            value = pair.value.forward(value);
        }
        (key, value)
    }

    /// The width of this layer's context: what A1111 picks a hypernetwork's module by.
    pub fn context_width(&self) -> usize {
        self.to_k.weight.dims()[0]
    }
}

impl UNet2DConditionModel {
    /// Sets every attention layer's hypernetworks to `make(context width)` (an empty list
    /// removes them): A1111's `apply_hypernetworks`, which keys the modules by the width of
    /// the attention's context.
    pub fn set_hypernetworks(&mut self, make: &mut dyn FnMut(usize) -> Vec<HypernetworkPair>) {
        let transformers = self
            .down_blocks
            .iter_mut()
            .flat_map(|b| b.attentions.iter_mut())
            .chain(self.mid_block.attentions.iter_mut())
            .chain(
                self.up_blocks
                    .iter_mut()
                    .flat_map(|b| b.attentions.iter_mut()),
            );
        for transformer in transformers {
            for block in &mut transformer.transformer_blocks {
                for attention in [&mut block.attn1, &mut block.attn2] {
                    attention.hypernetworks = make(attention.context_width());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Tensor};

    #[test]
    fn dropout_zeroes_about_p_of_the_elements_and_scales_the_rest() {
        let device = Device::default();
        let x = Tensor::<3>::ones([1, 200, 100], &device);
        let values = super::dropout(x, 0.3)
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        let zeros = values.iter().filter(|&&v| v == 0.0).count() as f64 / values.len() as f64;
        // 20 000 draws: the fraction's standard deviation is 0.0032; 0.02 is six of them.
        assert!((zeros - 0.3).abs() < 0.02, "{zeros}");
        let kept = 1.0 / 0.7f32;
        assert!(values.iter().all(|&v| v == 0.0 || (v - kept).abs() < 1e-6));
    }
}
