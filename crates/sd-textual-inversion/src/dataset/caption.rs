//! Captions (A1111's "filewords") and the prompt text built from them.
//!
//! From `modules/textual_inversion/dataset.py`:
//! - the caption is the whole content of the `.txt` sidecar when it exists (not stripped: a
//!   final newline stays), otherwise the file name without extension, with the leading run of
//!   digits and `-` and the whitespace after it removed (`re_numbers_at_start = ^[-\d]+\s*`,
//!   which turns preprocess's `00012-3-red car.png` into `red car`). A1111's optional
//!   `dataset_filename_word_regex` option defaults to empty (off); it is not implemented here.
//! - the prompt ([`CaptionBuilder::create_text`]) picks a template line, splits the caption on
//!   `,` (tags are *not* stripped), drops each tag unless `random() > tag_drop_out`, shuffles
//!   the tags if asked, joins them with `,` and substitutes `[filewords]` then `[name]`.
//! - without shuffle and drop-out, A1111 builds each image's text once, when the dataset is
//!   loaded, and keeps it for the whole run ([`CaptionBuilder::varies_per_fetch`]).

use std::path::Path;

use super::DatasetError;
use super::listing::{sidecar_path, splitext};
use super::rng::{RandomSource, shuffle};
use super::template::Template;

/// The caption of an image from its file name alone (no sidecar): the stem, with A1111's
/// `^[-\d]+\s*` prefix removed. Digits are ASCII here (Python's `\d` also takes other
/// Unicode decimal digits).
///
/// ```
/// use sd_textual_inversion::dataset::caption::filename_caption;
/// assert_eq!(filename_caption("00012-3-red car, blue sky.png"), "red car, blue sky");
/// assert_eq!(filename_caption("12 34 five.png"), "34 five");
/// assert_eq!(filename_caption("a-1-b.png"), "a-1-b");
/// assert_eq!(filename_caption("123-456.png"), "");
/// ```
pub fn filename_caption(file_name: &str) -> String {
    let (stem, _) = splitext(file_name);
    let rest = stem.trim_start_matches(|c: char| c == '-' || c.is_ascii_digit());
    if rest.len() == stem.len() {
        // The regex needs at least one digit or '-' before it eats whitespace.
        return stem.to_string();
    }
    rest.trim_start_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
        .to_string()
}

/// The caption of the image at `path`: its `.txt` sidecar's content (UTF-8, `\r\n` and `\r`
/// read as `\n` like Python's text mode) if the sidecar exists, else [`filename_caption`].
/// A sidecar over the default prompt cap is refused (see [`caption_for_limited`]).
///
/// ```no_run
/// use sd_textual_inversion::dataset::caption::caption_for;
/// let caption = caption_for("train/00001-0-benny.png".as_ref())?;
/// # Ok::<(), sd_textual_inversion::dataset::DatasetError>(())
/// ```
///
/// # Errors
/// [`DatasetError::Io`] if the sidecar exists but cannot be read as UTF-8 (A1111 fails too);
/// [`DatasetError::CaptionTooLong`] over [`sd_core::limits::Limits::max_prompt_chars`].
pub fn caption_for(path: &Path) -> Result<String, DatasetError> {
    caption_for_limited(path, sd_core::limits::Limits::default().max_prompt_chars)
}

/// [`caption_for`] with a cap of `max_chars` characters on the sidecar. A1111 reads any
/// length; a caption is part of every prompt, so one of a megabyte would make each step
/// encode thousands of CLIP chunks (gigabytes of activations). A sidecar of more than
/// `4 · max_chars` bytes is refused unread.
///
/// # Errors
/// As [`caption_for`].
pub fn caption_for_limited(path: &Path, max_chars: usize) -> Result<String, DatasetError> {
    let sidecar = sidecar_path(path);
    let io = |path: &Path, source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::metadata(&sidecar) {
        Ok(meta) => {
            // UTF-8 spends at most 4 bytes per character.
            let max_bytes = (max_chars as u64).saturating_mul(4);
            if meta.len() > max_bytes {
                return Err(DatasetError::CaptionTooLong {
                    path: sidecar,
                    chars: meta.len().div_ceil(4),
                    limit: max_chars as u64,
                });
            }
            let text = std::fs::read_to_string(&sidecar).map_err(|e| io(&sidecar, e))?;
            let chars = text.chars().count();
            if chars > max_chars {
                return Err(DatasetError::CaptionTooLong {
                    path: sidecar,
                    chars: chars as u64,
                    limit: max_chars as u64,
                });
            }
            return Ok(text.replace("\r\n", "\n").replace('\r', "\n"));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&sidecar, e)),
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    Ok(filename_caption(&name))
}

/// The file a caption comes from: the `.txt` sidecar when there is one, else the picture
/// itself (its name is the caption). For messages.
pub fn caption_source(path: &Path) -> std::path::PathBuf {
    let sidecar = sidecar_path(path);
    if sidecar.exists() {
        sidecar
    } else {
        path.to_path_buf()
    }
}

/// Builds training prompts: A1111's `PersonalizedBase.create_text`.
///
/// ```
/// use sd_textual_inversion::dataset::{caption::CaptionBuilder, rng::SplitMix64, template::Template};
/// let template = Template::from_text("t", "photo of [name], [filewords]")?;
/// let plain = CaptionBuilder::new(template.clone(), "benny");
/// let mut rng = SplitMix64::new(0);
/// assert_eq!(plain.create_text("a, b", &mut rng), "photo of benny, a, b");
/// assert!(!plain.varies_per_fetch());
///
/// let all_dropped = CaptionBuilder::new(template, "benny").tag_drop_out(1.0);
/// assert_eq!(all_dropped.create_text("a, b", &mut rng), "photo of benny, ");
/// # Ok::<(), sd_textual_inversion::dataset::DatasetError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CaptionBuilder {
    template: Template,
    placeholder: String,
    shuffle_tags: bool,
    tag_drop_out: f64,
}

impl CaptionBuilder {
    /// A builder over `template` that writes `placeholder` (the embedding's name) for `[name]`;
    /// no shuffle, no drop-out.
    pub fn new(template: Template, placeholder: &str) -> Self {
        Self {
            template,
            placeholder: placeholder.to_string(),
            shuffle_tags: false,
            tag_drop_out: 0.0,
        }
    }

    /// Shuffle the caption's comma-separated tags each time (`--shuffle-tags`).
    pub fn shuffle_tags(mut self, on: bool) -> Self {
        self.shuffle_tags = on;
        self
    }

    /// Drop each tag with probability `p` each time (`--tag-dropout`): A1111 keeps a tag when
    /// `random.random() > p`, so `p = 0` keeps all (and draws nothing), `p = 1` drops all.
    pub fn tag_drop_out(mut self, p: f64) -> Self {
        self.tag_drop_out = p;
        self
    }

    /// The template.
    pub fn template(&self) -> &Template {
        &self.template
    }

    /// Whether A1111 rebuilds the text at every fetch (shuffle or drop-out on: in
    /// `__getitem__`) rather than once per image when the dataset is loaded.
    pub fn varies_per_fetch(&self) -> bool {
        self.shuffle_tags || self.tag_drop_out != 0.0
    }

    /// One prompt for an image whose caption is `filewords`. Draws, in A1111's order: the
    /// template line (`below(lines)`), one float per tag if drop-out is on, then the shuffle.
    pub fn create_text(&self, filewords: &str, rng: &mut impl RandomSource) -> String {
        self.create_text_at(filewords, rng).1
    }

    /// [`create_text`](Self::create_text), with the index (0-based) of the template line it
    /// used; the same draws.
    pub fn create_text_at(&self, filewords: &str, rng: &mut impl RandomSource) -> (usize, String) {
        let index = self.template.choose_index(rng);
        let line = self
            .template
            .lines()
            .get(index)
            .cloned()
            .unwrap_or_default();
        let mut tags: Vec<&str> = filewords.split(',').collect();
        if self.tag_drop_out != 0.0 {
            tags.retain(|_| rng.next_f64() > self.tag_drop_out);
        }
        if self.shuffle_tags {
            shuffle(&mut tags, rng);
        }
        (
            index,
            Template::fill(&line, &self.placeholder, &tags.join(",")),
        )
    }
}
