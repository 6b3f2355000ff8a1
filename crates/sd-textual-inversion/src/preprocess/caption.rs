//! Caption sidecars: A1111's `preprocess_txt_action` ("Existing Caption txt Action").
//!
//! A1111 reads `<stem>.txt` beside each picture (UTF-8), combines it with the generated caption
//! (BLIP/DeepBooru; none here, so the generated caption is empty unless a caller supplies
//! one), strips surrounding whitespace and writes `<output basename>.txt` only when the result
//! is not empty.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::PreprocessError;

/// What to do with an existing `.txt` caption beside a picture.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptionAction {
    /// Do not read it (A1111's default).
    #[default]
    Ignore,
    /// Use it instead of the generated caption.
    Copy,
    /// `"{existing} {generated}"`.
    Prepend,
    /// `"{generated} {existing}"`.
    Append,
}

impl std::str::FromStr for CaptionAction {
    type Err = PreprocessError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ignore" => Ok(Self::Ignore),
            "copy" => Ok(Self::Copy),
            "prepend" => Ok(Self::Prepend),
            "append" => Ok(Self::Append),
            _ => Err(PreprocessError::InvalidOption {
                name: "caption action",
                value: s.to_owned(),
                expected: "ignore, copy, prepend or append",
            }),
        }
    }
}

/// Python's `str.strip()` whitespace: Unicode White_Space plus the separators U+001C–U+001F.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The caption A1111 writes for one output picture: `generated` combined with `existing` per
/// `action` (an empty or absent existing caption changes nothing), stripped.
pub fn compose_caption(generated: &str, existing: Option<&str>, action: CaptionAction) -> String {
    let combined = match (action, existing) {
        (CaptionAction::Prepend, Some(e)) if !e.is_empty() => format!("{e} {generated}"),
        (CaptionAction::Append, Some(e)) if !e.is_empty() => format!("{generated} {e}"),
        (CaptionAction::Copy, Some(e)) if !e.is_empty() => e.to_owned(),
        _ => generated.to_owned(),
    };
    combined.trim_matches(is_python_space).to_owned()
}

/// `f"{os.path.splitext(filename)[0]}.txt"`: the sidecar A1111 looks for.
pub fn sidecar_path(image: &Path) -> PathBuf {
    let name = image
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (stem, _) = super::naming::split_ext(&name);
    image.with_file_name(format!("{stem}.txt"))
}

/// Reads the sidecar caption of `image` if there is one.
///
/// # Errors
/// [`PreprocessError::Io`] when it exists but cannot be read, [`PreprocessError::CaptionNotUtf8`]
/// when it is not UTF-8 (A1111 opens it with `encoding="utf8"` and fails the same way).
pub fn read_sidecar(image: &Path) -> Result<Option<String>, PreprocessError> {
    let path = sidecar_path(image);
    if !path.is_file() {
        return Ok(None);
    }
    let bytes = std::fs::read(&path).map_err(|source| PreprocessError::Io {
        path: path.clone(),
        source,
    })?;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| PreprocessError::CaptionNotUtf8 { path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions() {
        let e = Some("  a dog\n");
        assert_eq!(compose_caption("", e, CaptionAction::Ignore), "");
        assert_eq!(compose_caption("", e, CaptionAction::Copy), "a dog");
        assert_eq!(compose_caption("", e, CaptionAction::Prepend), "a dog");
        assert_eq!(compose_caption("", e, CaptionAction::Append), "a dog");
        assert_eq!(
            compose_caption("blip", Some("tag"), CaptionAction::Prepend),
            "tag blip"
        );
        assert_eq!(
            compose_caption("blip", Some("tag"), CaptionAction::Append),
            "blip tag"
        );
        assert_eq!(
            compose_caption("blip", Some(""), CaptionAction::Copy),
            "blip"
        );
        assert_eq!(
            compose_caption("\u{1f}x\u{a0}", None, CaptionAction::Copy),
            "x"
        );
    }
}
