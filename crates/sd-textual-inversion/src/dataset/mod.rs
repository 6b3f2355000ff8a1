//! Training data, exactly as AUTOMATIC1111's textual-inversion trainer prepares it.
//!
//! Pure Rust, no tensors: the [`Trainer`](crate) builds on these pieces.
//!
//! - [`learn_rate_schedule`]: learning-rate (and gradient-clip) schedules, `"0.005:100, 1e-3:1000, 1e-5"`.
//! - [`template`]: prompt templates (`subject.txt`, `style_filewords.txt`, ...) with `[name]`
//!   and `[filewords]`.
//! - [`caption`]: captions from `.txt` sidecars or file names; tag shuffle and drop-out.
//! - [`listing`]: the files of a data folder, sidecar paths.
//! - [`alpha`]: PNG alpha as a per-latent-pixel loss weight (`use_weight`).
//! - [`batching`]: latent sampling modes, A1111's grouped batch sampler, epoch arithmetic.
//! - [`rng`]: the seeded random source behind template choice, shuffles and drop-out.
//!
//! Each item cites the A1111 code it mirrors (`modules/textual_inversion/*.py`); where we
//! deviate on purpose (sorted listing, constant alpha) the item says so.
//!
//! ```
//! use sd_textual_inversion::dataset::{
//!     caption::CaptionBuilder, rng::SplitMix64, learn_rate_schedule::LearnRateScheduler, template::Template,
//! };
//!
//! let mut lr = LearnRateScheduler::new("0.005:100, 1e-3:1000, 1e-5", 3000, 0)?;
//! assert_eq!(lr.learn_rate(), 0.005);
//! let template = Template::builtin("subject_filewords").expect("shipped");
//! let builder = CaptionBuilder::new(template, "realbenny-t2");
//! let mut rng = SplitMix64::new(42);
//! let text = builder.create_text("a man, smiling", &mut rng);
//! assert!(text.contains("realbenny-t2") && text.ends_with(", a man, smiling"));
//! lr.step(100);
//! assert_eq!(lr.learn_rate(), 1e-3);
//! # Ok::<(), sd_textual_inversion::dataset::DatasetError>(())
//! ```

pub mod alpha;
pub mod batching;
pub mod caption;
pub mod learn_rate_schedule;
pub mod listing;
pub mod rng;
pub mod template;

mod error;

pub use error::DatasetError;
