//! Errors of the noise module.

/// What can go wrong when configuring A1111-style noise.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoiseError {
    /// The random number source named in a setting or infotext is not one A1111 knows.
    #[error("unknown random number source {0:?}: expected \"CPU\", \"GPU\" or \"NV\"")]
    UnknownSource(String),
    /// A noise shape with a zero dimension.
    #[error(
        "empty noise shape {0:?}: every dimension of [channels, height, width] must be positive"
    )]
    EmptyShape([usize; 3]),
}
