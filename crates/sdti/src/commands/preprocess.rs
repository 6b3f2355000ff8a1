//! Prepare a folder of photos for training, as A1111's "Preprocess images".
//!
//! ```text
//! sdti preprocess --input photos --output train \
//!     --width 512 --height 512 --crop focal --flip --caption-action copy
//! ```
//!
//! Writes `{index:05}-{sub}-{name}.png` (+ `.txt` captions) into `--output`, prints the files
//! it could not read, and exits non-zero only when the run itself fails.

use std::ops::ControlFlow;
use std::path::PathBuf;

use clap::Parser;
use sd_textual_inversion::preprocess::{
    CaptionAction, CropMode, PreprocessOptions, preprocess_with_progress,
};

/// Resize, crop, split and flip a folder of pictures for textual inversion.
#[derive(Parser)]
pub struct Args {
    /// Folder of source pictures (any format the `image` crate decodes) and `.txt` captions.
    #[arg(long)]
    input: PathBuf,
    /// Folder to write into (created if missing; must differ from --input).
    #[arg(long)]
    output: PathBuf,
    /// Output width in pixels.
    #[arg(long, default_value_t = 512)]
    width: u32,
    /// Output height in pixels.
    #[arg(long, default_value_t = 512)]
    height: u32,
    /// center: scale to cover and keep the middle; focal: crop around the focal point
    /// (corners + entropy, as A1111's auto focal point crop without face detection).
    #[arg(long, default_value = "center")]
    crop: CropMode,
    /// Cut pictures much longer than the target into overlapping pieces.
    #[arg(long)]
    split_oversized: bool,
    /// Split when (short/long of the picture) / (short/long of the target) is at most this.
    #[arg(long, default_value_t = 0.5)]
    split_threshold: f64,
    /// Fraction of a split piece shared with the next one.
    #[arg(long, default_value_t = 0.2)]
    overlap: f64,
    /// Also write a mirrored copy of every output.
    #[arg(long)]
    flip: bool,
    /// What to do with `<name>.txt` beside a picture: ignore, copy, prepend or append.
    #[arg(long, default_value = "ignore")]
    caption_action: CaptionAction,
}

/// Runs the command.
///
/// # Errors
/// Whatever stops it: the message names the flag or file at fault.
pub fn run(args: Args) -> anyhow::Result<()> {
    let options = PreprocessOptions {
        width: args.width,
        height: args.height,
        crop: args.crop,
        split_oversized: args.split_oversized,
        split_threshold: args.split_threshold,
        overlap_ratio: args.overlap,
        flip: args.flip,
        caption_action: args.caption_action,
        ..PreprocessOptions::default()
    };
    let bar = indicatif::ProgressBar::new(0);
    let report = preprocess_with_progress(&args.input, &args.output, &options, |p| {
        bar.set_length(p.total as u64);
        bar.set_position(p.index as u64);
        ControlFlow::Continue(())
    })?;
    bar.finish_and_clear();
    for skipped in &report.skipped {
        eprintln!("skipped: {}", skipped.error);
    }
    println!(
        "wrote {} pictures and {} captions to {} ({} files skipped)",
        report.written.len(),
        report.captions.len(),
        args.output.display(),
        report.skipped.len()
    );
    Ok(())
}
