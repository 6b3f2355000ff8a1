//! The crate's error type.

/// Everything that can go wrong in this crate.
///
/// Split by who is at fault: a name the user typed that no sampler or schedule has, or a
/// parameter out of the range the maths allows.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchedulerError {
    /// A sampler name that is neither an A1111 label nor one of its aliases.
    #[error(
        "unknown sampler {0:?} (expected an AUTOMATIC1111 name such as \"Euler a\" or \"DPM++ 2M Karras\")"
    )]
    UnknownSampler(String),
    /// A schedule name that is neither an A1111 "Schedule type" label nor its short name.
    #[error(
        "unknown schedule type {0:?} (expected e.g. \"Automatic\", \"Karras\", \"Exponential\")"
    )]
    UnknownSigmaSchedule(String),
    /// Sampling needs at least one step.
    #[error("the number of steps must be at least 1, got {0}")]
    ZeroSteps(usize),
    /// A parameter outside the range its formula accepts.
    #[error("invalid parameter {name} = {value}: {reason}")]
    InvalidParameter {
        /// The parameter's name (`eta`, `rho`, `sigma_min`, ...).
        name: &'static str,
        /// The value given.
        value: f64,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A sampler that is named (so names parse) but not implemented in this version.
    #[error("the {0} sampler is not implemented yet")]
    Unsupported(&'static str),
    /// A noise schedule that cannot be built (e.g. betas outside (0, 1)).
    #[error("invalid noise schedule: {0}")]
    InvalidNoiseSchedule(String),
    /// Values drawn on the device could not be read back.
    #[error("reading a tensor back from the device: {0}")]
    ReadBack(#[source] burn::tensor::DataError),
}

/// The crate's `Result`.
pub type Result<T, E = SchedulerError> = std::result::Result<T, E>;
