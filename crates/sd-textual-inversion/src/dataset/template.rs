//! Prompt templates: one prompt per line, with `[name]` (the embedding's trigger word) and
//! `[filewords]` (the image's caption).
//!
//! The shipped templates (embedded in the binary) hold the same lines as A1111's
//! `textual_inversion_templates/` files of the same name; they were derived from the
//! MIT-licensed lists of rinongal/textual_inversion (see `templates/README.md` of this crate
//! and `tools/dataset_reference.py`). `filewords.txt` (the caption alone) is ours.
//!
//! A1111 reads a template with `[x.strip() for x in file.readlines()]` and picks a line with
//! `random.choice(lines)` for each caption it builds ([`Template::choose`]).

use std::path::Path;

use super::DatasetError;
use super::rng::{RandomSource, choice};

/// The shipped templates: `(name, text)`; the name is the file stem A1111 uses.
pub const BUILTIN: [(&str, &str); 7] = [
    ("none", include_str!("../../templates/none.txt")),
    ("subject", include_str!("../../templates/subject.txt")),
    (
        "subject_filewords",
        include_str!("../../templates/subject_filewords.txt"),
    ),
    ("style", include_str!("../../templates/style.txt")),
    (
        "style_filewords",
        include_str!("../../templates/style_filewords.txt"),
    ),
    (
        "hypernetwork",
        include_str!("../../templates/hypernetwork.txt"),
    ),
    ("filewords", include_str!("../../templates/filewords.txt")),
];

/// A prompt template: its lines, each already stripped as A1111 strips them.
///
/// ```
/// use sd_textual_inversion::dataset::template::Template;
/// let t = Template::builtin("style.txt").expect("shipped");
/// assert_eq!(t.lines()[0], "a painting, art by [name]");
/// let custom = Template::from_text("custom", "  [name], [filewords] \n\nphoto of [name]\n")?;
/// assert_eq!(custom.lines(), ["[name], [filewords]", "", "photo of [name]"]);
/// assert_eq!(Template::fill("[filewords] by [name]", "me", "a cat"), "a cat by me");
/// # Ok::<(), sd_textual_inversion::dataset::DatasetError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    name: String,
    lines: Vec<String>,
}

impl Template {
    /// A shipped template by name, with or without `.txt`: `none`, `subject`,
    /// `subject_filewords`, `style`, `style_filewords`, `hypernetwork`, `filewords`.
    pub fn builtin(name: &str) -> Option<Self> {
        let stem = name.strip_suffix(".txt").unwrap_or(name);
        let (n, text) = BUILTIN.iter().find(|(n, _)| *n == stem)?;
        Self::from_text(n, text).ok()
    }

    /// Splits `text` into lines as Python's text-mode `readlines()` does (`\r\n` and `\r` count
    /// as newlines; a final newline adds no line) and strips each one. Blank lines stay (A1111
    /// may pick them). `name` labels the template in messages.
    ///
    /// # Errors
    /// [`DatasetError::EmptyTemplate`] when there is no line at all.
    pub fn from_text(name: &str, text: &str) -> Result<Self, DatasetError> {
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let body = text.strip_suffix('\n').unwrap_or(&text);
        if text.is_empty() {
            return Err(DatasetError::EmptyTemplate(name.to_string()));
        }
        let lines = body
            .split('\n')
            .map(|l| {
                l.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
                    .to_string()
            })
            .collect();
        Ok(Self {
            name: name.to_string(),
            lines,
        })
    }

    /// Reads a template file (UTF-8).
    ///
    /// # Errors
    /// [`DatasetError::Io`] if it cannot be read or is not UTF-8,
    /// [`DatasetError::EmptyTemplate`] if it is empty.
    pub fn from_file(path: &Path) -> Result<Self, DatasetError> {
        let text = std::fs::read_to_string(path).map_err(|source| DatasetError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_text(&path.display().to_string(), &text)
    }

    /// `--template NAME|FILE`: a shipped template if `name_or_path` names one, otherwise a file.
    ///
    /// # Errors
    /// [`DatasetError::UnknownTemplate`] when it is neither a shipped name nor an existing
    /// file; otherwise as [`Template::from_file`].
    pub fn load(name_or_path: &str) -> Result<Self, DatasetError> {
        if let Some(t) = Self::builtin(name_or_path) {
            return Ok(t);
        }
        let path = Path::new(name_or_path);
        if !path.is_file() {
            return Err(DatasetError::UnknownTemplate {
                name: name_or_path.to_string(),
                known: BUILTIN
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Self::from_file(path)
    }

    /// The template's name (the shipped name or the file path).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The lines, stripped.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// A1111's `random.choice(self.lines)`: one line, uniformly.
    ///
    /// ```
    /// use sd_textual_inversion::dataset::{rng::SplitMix64, template::Template};
    /// let t = Template::builtin("subject").expect("shipped");
    /// let line = t.choose(&mut SplitMix64::new(5));
    /// assert!(line.contains("[name]"));
    /// ```
    pub fn choose(&self, rng: &mut impl RandomSource) -> &str {
        // Never empty: from_text refuses that.
        choice(&self.lines, rng).map_or("", String::as_str)
    }

    /// The index of the line [`choose`](Self::choose) picks, with the same draw.
    pub fn choose_index(&self, rng: &mut impl RandomSource) -> usize {
        if self.lines.is_empty() {
            return 0;
        }
        rng.below(self.lines.len())
    }

    /// A1111's substitution: `[filewords]` first, then `[name]` (so a caption containing
    /// `[name]` gets the trigger word too, as in A1111).
    pub fn fill(line: &str, name: &str, filewords: &str) -> String {
        line.replace("[filewords]", filewords)
            .replace("[name]", name)
    }
}
