//! Errors of the noise module.

/// What can go wrong when configuring A1111-style noise.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoiseError {
    /// The random number source named in a setting or infotext is not one A1111 knows.
    #[error("unknown random number source {0:?}: expected \"CPU\", \"GPU\" or \"NV\"")]
    UnknownSource(String),
    /// "Resize seed from" gives a size whose latent noise would be empty.
    #[error(
        "seed resize from {width}x{height} pixels gives an empty latent (each side must be at least {min} pixels)"
    )]
    ResizeTooSmall {
        /// Requested width in pixels.
        width: u32,
        /// Requested height in pixels.
        height: u32,
        /// The smallest side that gives one latent pixel.
        min: u32,
    },
    /// A noise shape with a zero dimension.
    #[error(
        "empty noise shape {0:?}: every dimension of [channels, height, width] must be positive"
    )]
    EmptyShape([usize; 3]),
}
