//! Where a generation's files go: the pictures (`output`, then `<stem>-<i>.png`) and the
//! optional latents file, checked before anything runs.

use std::path::{Path, PathBuf};

use crate::error::{CoreError, Result};

/// The picture files of a batch of `batch` written under `output` (`output` itself, then
/// `<stem>-<i>.png` beside it), checked against the latents file `latents` if any.
///
/// Pictures are PNG with A1111's `parameters` text chunk, so `output` must be named `.png`
/// (A1111 writes JPEG and WebP too, with the parameters in EXIF; here a `.jpg` name would get
/// PNG bytes, so it is refused). The latents file must be none of the pictures (it would
/// replace one).
///
/// ```
/// use std::path::{Path, PathBuf};
/// let paths = sd_core::pipeline::output_paths(Path::new("out/fox.png"), 2, None)?;
/// assert_eq!(paths, [PathBuf::from("out/fox.png"), PathBuf::from("out/fox-1.png")]);
/// assert!(sd_core::pipeline::output_paths(Path::new("fox.jpg"), 1, None).is_err());
/// assert!(sd_core::pipeline::output_paths(Path::new("a.png"), 1, Some(Path::new("a.png"))).is_err());
/// # Ok::<(), sd_core::CoreError>(())
/// ```
///
/// # Errors
/// [`CoreError::OutputPath`] naming the file.
pub fn output_paths(output: &Path, batch: usize, latents: Option<&Path>) -> Result<Vec<PathBuf>> {
    let is_png = output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !is_png {
        return Err(CoreError::OutputPath {
            path: output.to_path_buf(),
            reason: "pictures are written as PNG (with A1111's `parameters` text): name the \
                     output file .png"
                .into(),
        });
    }
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    let paths: Vec<PathBuf> = (0..batch.max(1))
        .map(|i| {
            if i == 0 {
                output.to_path_buf()
            } else {
                output.with_file_name(format!("{stem}-{i}.png"))
            }
        })
        .collect();
    if let Some(latents) = latents
        && let Some(picture) = paths.iter().find(|p| same_file(p, latents))
    {
        return Err(CoreError::OutputPath {
            path: latents.to_path_buf(),
            reason: format!(
                "the latents file would replace the picture {}",
                picture.display()
            ),
        });
    }
    Ok(paths)
}

/// Whether two paths name one file: the same name in the same folder (folders compared after
/// resolving them where they exist, so `a.png` and `./a.png` match).
fn same_file(a: &Path, b: &Path) -> bool {
    if a.file_name() != b.file_name() {
        return false;
    }
    let folder = |p: &Path| {
        let parent = p
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        parent
            .canonicalize()
            .unwrap_or_else(|_| parent.to_path_buf())
    };
    folder(a) == folder(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latents_file_may_not_be_a_picture_of_the_batch() {
        let e = output_paths(Path::new("o.png"), 3, Some(Path::new("./o-2.png")))
            .expect_err("o-2.png is the third picture");
        assert!(matches!(e, CoreError::OutputPath { .. }), "{e:?}");
        assert!(e.to_string().contains("o-2.png"), "{e}");
        assert!(output_paths(Path::new("o.PNG"), 3, Some(Path::new("o.safetensors"))).is_ok());
    }
}
