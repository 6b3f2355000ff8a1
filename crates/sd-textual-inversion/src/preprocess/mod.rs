//! Preparing a folder of photos for training: A1111's "Preprocess images" (Train tab, up to
//! v1.5: `modules/textual_inversion/preprocess.py`; later the "postprocessing-for-training"
//! extras), so a folder preprocessed here holds the same files A1111 would write.
//!
//! For every entry of the input folder, in name order, at position `index`:
//! 1. open the picture (any format the `image` crate decodes, EXIF orientation applied,
//!    converted to 8-bit RGB — [`load`]); non-pictures are listed in
//!    [`PreprocessReport::skipped`], `.txt` captions and folders are passed over;
//! 2. with [`PreprocessOptions::split_oversized`], cut a picture much longer than the target
//!    into overlapping pieces ([`split`]);
//! 3. with [`CropMode::Focal`], crop a non-square picture around its focal point ([`focal`]);
//! 4. otherwise scale to cover the target and keep the middle ([`crop::center_crop`]);
//! 5. write each result as `{index:05}-{subindex}-{stem}.png`, followed by its mirror image
//!    with [`PreprocessOptions::flip`], and beside it `{same}.txt` when the caption action
//!    gives a caption ([`caption`]). Files are written to a temporary name and renamed.
//!
//! Resizing reproduces Pillow's filters bit for bit ([`resample`]), so the pixels match
//! A1111's outputs exactly; see `tests/preprocess.rs` and `tools/preprocess_reference.py`.
//!
//! ```no_run
//! use sd_textual_inversion::preprocess::{preprocess, PreprocessOptions};
//!
//! let options = PreprocessOptions { flip: true, ..PreprocessOptions::default() };
//! let report = preprocess("photos".as_ref(), "train".as_ref(), &options)?;
//! for skipped in &report.skipped {
//!     eprintln!("skipped: {}", skipped.error);
//! }
//! # Ok::<(), sd_textual_inversion::preprocess::PreprocessError>(())
//! ```

pub mod caption;
pub mod corners;
pub mod crop;
pub mod error;
pub mod focal;
pub mod gray;
pub mod load;
pub mod naming;
pub mod options;
pub mod resample;
pub mod run;
pub mod split;
pub mod write;

pub use caption::CaptionAction;
pub use error::PreprocessError;
pub use focal::FocalWeights;
pub use options::{CropMode, PreprocessOptions};
pub use run::{
    PreprocessReport, Progress, SkippedFile, largest_intermediate, preprocess,
    preprocess_with_progress, process_image,
};
