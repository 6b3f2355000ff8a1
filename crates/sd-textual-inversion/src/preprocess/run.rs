//! The folder driver: A1111's `preprocess_work` loop, and the per-picture pipeline.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use image::RgbImage;

use super::caption::{CaptionAction, compose_caption, read_sidecar};
use super::crop::{center_crop, cover_size};
use super::error::PreprocessError;
use super::focal::{focal_crop, scaled_size};
use super::load::load_rgb_limited;
use super::naming::output_basename;
use super::options::{CropMode, PreprocessOptions};
use super::split::{clamp_parameters, is_oversized, plan, split};
use super::write::{write_atomic, write_png};

/// Every output of one picture, in A1111's order (its `subindex` order): the split pieces,
/// then the focal crop, then the original, or else the center crop; each followed by its
/// mirror image when [`PreprocessOptions::flip`] is set.
///
/// Like A1111, splitting and the focal crop both apply to a picture that qualifies for both.
/// The caller checks [`largest_intermediate`] against a memory budget first.
pub fn process_image(image: &RgbImage, options: &PreprocessOptions) -> Vec<RgbImage> {
    let (w, h) = (options.width, options.height);
    let (threshold, overlap) = clamp_parameters(options.split_threshold, options.overlap_ratio);
    let mut outputs = Vec::new();
    let mut default_resize = true;
    if options.split_oversized && is_oversized(image.width(), image.height(), w, h, threshold) {
        outputs.extend(split(image, w, h, overlap));
        default_resize = false;
    }
    if options.crop == CropMode::Focal && image.width() != image.height() {
        outputs.push(focal_crop(image, w, h, options.focal_weights).image);
        default_resize = false;
    }
    if options.keep_original_size {
        outputs.push(image.clone());
        default_resize = false;
    }
    if default_resize {
        outputs.push(center_crop(image, w, h));
    }
    if options.flip {
        outputs = outputs
            .into_iter()
            .flat_map(|o| {
                let mirrored = image::imageops::flip_horizontal(&o);
                [o, mirrored]
            })
            .collect();
    }
    outputs
}

/// The largest picture (width, height) [`process_image`] builds for a `w × h` source.
pub fn largest_intermediate(w: u32, h: u32, options: &PreprocessOptions) -> (u64, u64) {
    let (tw, th) = (options.width, options.height);
    let (threshold, overlap) = clamp_parameters(options.split_threshold, options.overlap_ratio);
    let mut sizes = vec![cover_size(w, h, tw, th), (tw, th)];
    if options.split_oversized && is_oversized(w, h, tw, th, threshold) {
        sizes.push(plan(w, h, tw, th, overlap).0);
    }
    if options.crop == CropMode::Focal && w != h {
        sizes.push(scaled_size(w, h, tw, th));
    }
    sizes
        .into_iter()
        .map(|(a, b)| (u64::from(a), u64::from(b)))
        .max_by_key(|&(a, b)| a * b)
        .unwrap_or((0, 0))
}

/// A file of an input folder (preprocessing's, or the training pictures') that was not used,
/// and why.
#[derive(Debug)]
#[non_exhaustive]
pub struct SkippedFile {
    /// The input file.
    pub path: PathBuf,
    /// Why it was skipped.
    pub error: PreprocessError,
}

/// What a preprocessing run did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct PreprocessReport {
    /// The pictures written, in order.
    pub written: Vec<PathBuf>,
    /// The caption files written, in order.
    pub captions: Vec<PathBuf>,
    /// Input files that could not be used (not pictures, corrupt, too large, caption not
    /// UTF-8). Folders and `.txt` files are passed over silently.
    pub skipped: Vec<SkippedFile>,
    /// Whether the progress callback stopped the run early.
    pub interrupted: bool,
}

/// Where a run is, given to the progress callback before each input entry.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Progress<'a> {
    /// Position of the entry in the sorted folder listing (the `index` of output names).
    pub index: usize,
    /// Number of entries in the folder.
    pub total: usize,
    /// The entry.
    pub path: &'a Path,
}

/// Preprocesses every picture in `input` into `output` (created if missing): see the module
/// docs for the names and steps.
///
/// # Errors
/// Bad options, an unreadable input folder, input and output being the same folder, or a
/// failed write. Per-picture problems do not stop the run: they are listed in
/// [`PreprocessReport::skipped`].
pub fn preprocess(
    input: &Path,
    output: &Path,
    options: &PreprocessOptions,
) -> Result<PreprocessReport, PreprocessError> {
    preprocess_with_progress(input, output, options, |_| ControlFlow::Continue(()))
}

/// [`preprocess`], calling `progress` before each folder entry; returning
/// [`ControlFlow::Break`] stops the run after the pictures already written
/// ([`PreprocessReport::interrupted`]).
///
/// # Errors
/// As [`preprocess`].
pub fn preprocess_with_progress(
    input: &Path,
    output: &Path,
    options: &PreprocessOptions,
    mut progress: impl FnMut(&Progress<'_>) -> ControlFlow<()>,
) -> Result<PreprocessReport, PreprocessError> {
    options.validate()?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PreprocessError::Io { path, source }
    };
    let src = input.canonicalize().map_err(io(input))?;
    std::fs::create_dir_all(output).map_err(io(output))?;
    let dst = output.canonicalize().map_err(io(output))?;
    if src == dst {
        return Err(PreprocessError::SameDirectory { path: src });
    }
    // A1111 takes `os.listdir`'s order, which is the file system's; sorting by name makes
    // the indices reproducible.
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(&src).map_err(io(&src))? {
        entries.push(entry.map_err(io(&src))?.file_name());
    }
    entries.sort();
    let total = entries.len();
    let mut report = PreprocessReport::default();
    for (index, name) in entries.iter().enumerate() {
        let path = src.join(name);
        if progress(&Progress {
            index,
            total,
            path: &path,
        })
        .is_break()
        {
            report.interrupted = true;
            break;
        }
        let is_caption = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("txt"));
        if path.is_dir() || is_caption {
            continue;
        }
        match process_file(&path, index, &dst, options, &mut report) {
            Ok(()) => {}
            Err(error @ (PreprocessError::Io { .. } | PreprocessError::Encode { .. }))
                if error_is_output(&error, &dst) =>
            {
                return Err(error);
            }
            Err(error) => {
                tracing::warn!("skipping {}: {error}", path.display());
                report.skipped.push(SkippedFile { path, error });
            }
        }
    }
    Ok(report)
}

/// Whether an I/O error concerns the output folder (fatal) rather than an input (skipped).
/// An output name the file system refuses as too long comes from that one input's name
/// (`00000-0-<its name>.png`): the input is skipped, the run goes on.
fn error_is_output(error: &PreprocessError, dst: &Path) -> bool {
    match error {
        PreprocessError::Io { path, source } => {
            path.starts_with(dst) && source.kind() != std::io::ErrorKind::InvalidFilename
        }
        PreprocessError::Encode { path, source } => {
            let name_too_long = matches!(
                source,
                image::ImageError::IoError(e) if e.kind() == std::io::ErrorKind::InvalidFilename
            );
            path.starts_with(dst) && !name_too_long
        }
        _ => false,
    }
}

fn process_file(
    path: &Path,
    index: usize,
    dst: &Path,
    options: &PreprocessOptions,
    report: &mut PreprocessReport,
) -> Result<(), PreprocessError> {
    let image = load_rgb_limited(path, options.max_pixels)?;
    let (iw, ih) = largest_intermediate(image.width(), image.height(), options);
    let source_pixels = u64::from(image.width()) * u64::from(image.height());
    if iw * ih > options.max_pixels || source_pixels > options.max_pixels {
        return Err(PreprocessError::TooLarge {
            path: path.to_path_buf(),
            width: iw.max(u64::from(image.width())),
            height: ih.max(u64::from(image.height())),
            limit: options.max_pixels,
        });
    }
    let existing = match options.caption_action {
        CaptionAction::Ignore => None,
        _ => read_sidecar(path)?,
    };
    let caption = compose_caption("", existing.as_deref(), options.caption_action);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for (subindex, out) in process_image(&image, options).iter().enumerate() {
        let base = output_basename(index, subindex, &name);
        let png = dst.join(format!("{base}.png"));
        write_png(&png, out)?;
        report.written.push(png);
        if !caption.is_empty() {
            let txt = dst.join(format!("{base}.txt"));
            write_atomic(&txt, caption.as_bytes())?;
            report.captions.push(txt);
        }
    }
    Ok(())
}
