//! The caps a caller puts on what one torch file may make the reader hold.

use crate::MAX_DEPTH;

/// Default of [`TorchFileLimits::max_tensor_bytes`]: 4 GiB, 16 times the largest tensor of
/// any Stable Diffusion checkpoint (SDXL's OpenCLIP-G token embedding, 253 MB in f32) and far
/// below what a lying header can claim.
pub const DEFAULT_MAX_TENSOR_BYTES: u64 = 4 << 30;

/// Caps for [`TorchFile::open_with_limits`](crate::TorchFile::open_with_limits). Every reader
/// already checks declared sizes against the file's real length before allocating; these
/// caps bound what a *valid-looking* file may cost.
///
/// ```
/// use sd_torch_file::TorchFileLimits;
/// let mut limits = TorchFileLimits::default();
/// limits.max_tensor_bytes = 1 << 20;
/// assert_eq!(limits.max_pickle_depth, sd_torch_file::MAX_DEPTH);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TorchFileLimits {
    /// Largest storage, in bytes of its stored dtype, the file may hold.
    pub max_tensor_bytes: u64,
    /// Deepest nesting of the pickle's containers; clamped to [`MAX_DEPTH`] (the reader
    /// converts recursively: the cap can be lowered, never raised past what the stack holds).
    pub max_pickle_depth: usize,
}

impl Default for TorchFileLimits {
    fn default() -> Self {
        Self {
            max_tensor_bytes: DEFAULT_MAX_TENSOR_BYTES,
            max_pickle_depth: MAX_DEPTH,
        }
    }
}

impl TorchFileLimits {
    /// The nesting cap actually applied: [`TorchFileLimits::max_pickle_depth`] clamped to
    /// [`MAX_DEPTH`].
    pub fn pickle_depth(&self) -> usize {
        self.max_pickle_depth.min(MAX_DEPTH)
    }
}
