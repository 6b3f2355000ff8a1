//! The files of a data folder, and where their caption sidecars are.
//!
//! A1111 (`PersonalizedBase.__init__`) takes every entry of `os.listdir(data_root)`, tries
//! `PIL.Image.open` on it and silently skips whatever fails (caption `.txt` files, folders,
//! anything not an image); there is no extension filter and no special case for
//! `.preview.png`. [`list_candidates`] returns the same candidates, leaving the decoding (and
//! the skipping) to the caller. One deliberate difference: `os.listdir` order is the file
//! system's, we sort by file name so that a seeded run is reproducible everywhere.

use std::path::{Path, PathBuf};

use super::DatasetError;

/// Python's `os.path.splitext` on a file name: `(root, ext)` where `ext` starts at the last
/// dot, unless everything before that dot is dots (`".hidden"`, `"..png"` have no extension).
///
/// ```
/// use sd_textual_inversion::dataset::listing::splitext;
/// assert_eq!(splitext("00001-0-cat.png"), ("00001-0-cat", ".png"));
/// assert_eq!(splitext("x.tar.gz"), ("x.tar", ".gz"));
/// assert_eq!(splitext(".hidden"), (".hidden", ""));
/// assert_eq!(splitext("..png"), ("..png", ""));
/// assert_eq!(splitext("noext"), ("noext", ""));
/// ```
pub fn splitext(name: &str) -> (&str, &str) {
    let start = name
        .rfind(['/', std::path::MAIN_SEPARATOR])
        .map_or(0, |i| i + 1);
    if let Some(dot) = name.rfind('.').filter(|&d| d > start)
        && name[start..dot].bytes().any(|b| b != b'.')
    {
        return name.split_at(dot);
    }
    (name, "")
}

/// The caption sidecar A1111 looks for: `os.path.splitext(path)[0] + ".txt"`.
///
/// ```
/// use std::path::Path;
/// use sd_textual_inversion::dataset::listing::sidecar_path;
/// assert_eq!(sidecar_path(Path::new("data/00001-0-cat.png")), Path::new("data/00001-0-cat.txt"));
/// assert_eq!(sidecar_path(Path::new("data/.hidden")), Path::new("data/.hidden.txt"));
/// ```
pub fn sidecar_path(path: &Path) -> PathBuf {
    let Some(file) = path.file_name().and_then(|n| n.to_str()) else {
        // A non-UTF-8 name: the standard library's notion of extension is close enough.
        return path.with_extension("txt");
    };
    let (root, _) = splitext(file);
    path.with_file_name(format!("{root}.txt"))
}

/// The candidate image files of `dir`, sorted by file name: every entry that is a file
/// (following symbolic links). The caller decodes each one and skips those that fail, as A1111
/// does; if none decodes, that is [`DatasetError::NoImages`].
///
/// ```no_run
/// use sd_textual_inversion::dataset::listing::list_candidates;
/// for path in list_candidates("train/benny".as_ref())? {
///     println!("{}", path.display());
/// }
/// # Ok::<(), sd_textual_inversion::dataset::DatasetError>(())
/// ```
///
/// # Errors
/// [`DatasetError::NotADirectory`] ("Dataset directory doesn't exist"),
/// [`DatasetError::EmptyDirectory`] ("Dataset directory is empty": no entry at all),
/// [`DatasetError::Io`] if the folder cannot be read.
pub fn list_candidates(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    if !dir.is_dir() {
        return Err(DatasetError::NotADirectory(dir.to_path_buf()));
    }
    let io = |source| DatasetError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut any = false;
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        any = true;
        let path = entry.path();
        if path.is_file() {
            files.push(path);
        }
    }
    if !any {
        return Err(DatasetError::EmptyDirectory(dir.to_path_buf()));
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}
