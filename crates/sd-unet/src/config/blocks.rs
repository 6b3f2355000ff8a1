//! The per-block values and block kinds of a [`UNetConfig`](super::UNetConfig): diffusers'
//! lists-or-scalars (`attention_head_dim`, ...) and `down_block_types`, `up_block_types`,
//! `mid_block_type`.

use serde::{Deserialize, Serialize};

use crate::error::UNetError;

/// A value given once for every block or as one value per block, as diffusers accepts for
/// `attention_head_dim`, `only_cross_attention` and `transformer_layers_per_block`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PerBlock<T> {
    /// The same value for every down block (and, mirrored, every up block).
    All(T),
    /// One value per down block, in down-block order.
    Each(Vec<T>),
}

impl<T: Clone> PerBlock<T> {
    /// The value of each of `n` down blocks, or an error naming `field` when a list has the
    /// wrong length.
    pub fn per_block(&self, n: usize, field: &'static str) -> Result<Vec<T>, UNetError> {
        match self {
            Self::All(value) => Ok(vec![value.clone(); n]),
            Self::Each(values) if values.len() == n => Ok(values.clone()),
            Self::Each(values) => Err(UNetError::Config {
                field,
                message: format!("{} values for {n} down blocks", values.len()),
            }),
        }
    }
}

/// The kind of a down block (`down_block_types`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DownBlockType {
    /// Resnets each followed by a `Transformer2DModel` (self- and cross-attention).
    CrossAttnDownBlock2D,
    /// Resnets only.
    DownBlock2D,
}

impl DownBlockType {
    /// Whether the block has attention layers.
    pub fn has_attention(self) -> bool {
        self == Self::CrossAttnDownBlock2D
    }
}

/// The kind of an up block (`up_block_types`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpBlockType {
    /// Resnets each followed by a `Transformer2DModel`.
    CrossAttnUpBlock2D,
    /// Resnets only.
    UpBlock2D,
}

impl UpBlockType {
    /// Whether the block has attention layers.
    pub fn has_attention(self) -> bool {
        self == Self::CrossAttnUpBlock2D
    }
}

/// The kind of the middle block (`mid_block_type`); SD 1.x and 2.x use the only one supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MidBlockType {
    /// resnet, then (transformer, resnet) pairs.
    UNetMidBlock2DCrossAttn,
}
