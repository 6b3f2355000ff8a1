//! The embeddings folder, as A1111's `EmbeddingDatabase` (`textual_inversion.py`,
//! `load_textual_inversion_embeddings` / `load_from_dir` / `load_from_file`): every file under
//! the folders (recursively, following links), named by file stem (tensor files) or stored
//! name (images), width-checked against the model, sorted case-insensitively by name.
//!
//! Where A1111 prints a traceback for a file it cannot read and silently passes over empty
//! files and `*.preview.png`, the database lists each with its reason ([`SkippedFile`]).

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
};

use sd_clip::ClipTokenizer;
use sha2::{Digest, Sha256};

use super::{
    embedding::{Embedding, EmbeddingFormat, width_mismatch},
    error::{EmbeddingError, Result},
    formats::{FileKind, read_file},
};
use crate::conditioning::EmbeddingLookup;

/// Folder nesting followed at most (a link loop ends here).
const MAX_DEPTH: usize = 32;

/// An embedding read from a file.
#[derive(Debug, Clone)]
pub struct LoadedEmbedding {
    /// The embedding (its `name` is the trigger word).
    pub embedding: Embedding,
    /// The layout it was read from.
    pub format: EmbeddingFormat,
    /// The file.
    pub path: PathBuf,
    /// sha256 of the file, lowercase hex (A1111's `Embedding.hash`; `TI hashes` uses its
    /// first 12 digits).
    pub sha256: String,
}

impl LoadedEmbedding {
    /// A1111's `shorthash`: the first 12 hex digits of the file's sha256.
    pub fn shorthash(&self) -> &str {
        shorthash_of(&self.sha256)
    }
}

/// Why a file in the folder is not in the database.
#[derive(Debug)]
#[non_exhaustive]
pub enum SkipReason {
    /// A zero-byte file.
    Empty,
    /// A `*.preview.png` (a model preview picture, not an embedding).
    Preview,
    /// An image without embedding data.
    NoEmbeddingData,
    /// The embedding's width does not fit the text encoder.
    WrongWidth {
        /// The embedding's width (A1111's `shape`; 2048 for SDXL).
        embedding: usize,
        /// The model's.
        model: usize,
    },
    /// Another file of the same name came later and replaced it.
    Replaced {
        /// The file that won.
        by: PathBuf,
    },
    /// The file could not be read as an embedding.
    Error(EmbeddingError),
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::Empty => f.write_str("empty file"),
            SkipReason::Preview => f.write_str("a preview image"),
            SkipReason::NoEmbeddingData => f.write_str("an image without embedding data"),
            SkipReason::WrongWidth { embedding, model } => {
                f.write_str(&width_mismatch(*embedding, *model))
            }
            SkipReason::Replaced { by } => {
                write!(f, "replaced by {} of the same name", by.display())
            }
            SkipReason::Error(e) => write!(f, "{e}"),
        }
    }
}

/// A file of the folder that is not in the database, and why.
#[derive(Debug)]
pub struct SkippedFile {
    /// The file.
    pub path: PathBuf,
    /// The embedding's name when it was read (wrong width, replaced).
    pub name: Option<String>,
    /// Why it was skipped.
    pub reason: SkipReason,
}

/// The embeddings of one or more folders.
///
/// ```no_run
/// use sd_core::embeddings::EmbeddingDatabase;
/// let db = EmbeddingDatabase::load_dirs(&["embeddings".into()], Some(768));
/// println!("{}", db.summary());
/// for s in db.skipped() {
///     eprintln!("{}: {}", s.path.display(), s.reason);
/// }
/// ```
#[derive(Debug, Default)]
pub struct EmbeddingDatabase {
    dirs: Vec<PathBuf>,
    expected_width: Option<usize>,
    embeddings: Vec<LoadedEmbedding>,
    skipped: Vec<SkippedFile>,
}

impl EmbeddingDatabase {
    /// Loads every embedding under `dirs` (missing folders are passed over, as A1111 does).
    /// `expected_width` is the text encoder's width (768 SD 1.x, 1024 SD 2.x); `None` accepts
    /// every width.
    pub fn load_dirs(dirs: &[PathBuf], expected_width: Option<usize>) -> Self {
        let mut db = Self {
            dirs: dirs.to_vec(),
            expected_width,
            ..Self::default()
        };
        db.reload();
        db
    }

    /// Reads the folders again (A1111's `force_reload`).
    pub fn reload(&mut self) {
        self.embeddings.clear();
        self.skipped.clear();
        let mut files = Vec::new();
        let mut seen = HashSet::new();
        for dir in &self.dirs {
            walk(dir, 0, &mut seen, &mut files);
        }
        for path in files {
            self.load_file(path);
        }
        // A1111 re-sorts by `name.lower()` (a stable sort).
        self.embeddings
            .sort_by_cached_key(|e| e.embedding.name.to_lowercase());
    }

    fn skip(&mut self, path: PathBuf, name: Option<String>, reason: SkipReason) {
        self.skipped.push(SkippedFile { path, name, reason });
    }

    fn load_file(&mut self, path: PathBuf) {
        let Some(kind) = FileKind::of(&path) else {
            return; // A1111 passes over other extensions (.txt, .optim, ...) silently.
        };
        match std::fs::metadata(&path) {
            Ok(m) if m.len() == 0 => return self.skip(path, None, SkipReason::Empty),
            Ok(_) => {}
            Err(e) => {
                let err = EmbeddingError::io(&path, e);
                return self.skip(path, None, SkipReason::Error(err));
            }
        }
        if kind == FileKind::Png
            && Path::new(&super::formats::file_stem(&path))
                .extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("preview"))
        {
            return self.skip(path, None, SkipReason::Preview);
        }
        let (embedding, format) = match read_file(&path) {
            Ok(r) => r,
            Err(EmbeddingError::NoEmbeddingInImage { .. }) => {
                return self.skip(path, None, SkipReason::NoEmbeddingData);
            }
            Err(e) => return self.skip(path, None, SkipReason::Error(e)),
        };
        if let Some(model) = self.expected_width
            && embedding.vectors_for_width(model).is_none()
        {
            let reason = SkipReason::WrongWidth {
                embedding: embedding.shape(),
                model,
            };
            return self.skip(path, Some(embedding.name), reason);
        }
        let sha256 = match file_sha256(&path) {
            Ok(hash) => hash,
            Err(err) => return self.skip(path, Some(embedding.name), SkipReason::Error(err)),
        };
        // A1111's word_embeddings is a dict: a later file of the same name replaces it.
        if let Some(i) = self
            .embeddings
            .iter()
            .position(|e| e.embedding.name == embedding.name)
        {
            let old = self.embeddings.remove(i);
            let reason = SkipReason::Replaced { by: path.clone() };
            self.skip(old.path, Some(old.embedding.name), reason);
        }
        self.embeddings.push(LoadedEmbedding {
            embedding,
            format,
            path,
            sha256,
        });
    }

    /// The folders this database reads.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The embeddings, sorted case-insensitively by name.
    pub fn embeddings(&self) -> &[LoadedEmbedding] {
        &self.embeddings
    }

    /// The embedding called `name`.
    pub fn get(&self, name: &str) -> Option<&LoadedEmbedding> {
        self.embeddings.iter().find(|e| e.embedding.name == name)
    }

    /// The files that are not in the database, with the reason, in folder-walk order.
    pub fn skipped(&self) -> &[SkippedFile] {
        &self.skipped
    }

    /// The trigger words, in order.
    pub fn names(&self) -> Vec<&str> {
        self.embeddings
            .iter()
            .map(|e| e.embedding.name.as_str())
            .collect()
    }

    /// A1111 v1.10's console lines: `Textual inversion embeddings loaded(2): a, b`, and
    /// `Textual inversion embeddings skipped(1): c` when some were the wrong width.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "Textual inversion embeddings loaded({}): {}",
            self.embeddings.len(),
            self.names().join(", ")
        );
        let wrong: Vec<&str> = self
            .skipped
            .iter()
            .filter(|s| matches!(s.reason, SkipReason::WrongWidth { .. }))
            .filter_map(|s| s.name.as_deref())
            .collect();
        if !wrong.is_empty() {
            s.push_str(&format!(
                "\nTextual inversion embeddings skipped({}): {}",
                wrong.len(),
                wrong.join(", ")
            ));
        }
        s
    }

    /// The prompt encoder's lookup: every embedding registered by its name's tokens
    /// (A1111's `register_embedding`), with the vectors that fit `width` (the database's
    /// expected width when `None`, else each embedding's own).
    ///
    /// # Errors
    /// [`EmbeddingError::Conditioning`] for a name without tokens;
    /// [`EmbeddingError::Invalid`] when an embedding has no part of that width.
    pub fn lookup(&self, tokenizer: &ClipTokenizer) -> Result<EmbeddingLookup> {
        let mut lookup = EmbeddingLookup::new();
        for e in &self.embeddings {
            let width = self.expected_width.unwrap_or(e.embedding.vectors.dim);
            let vectors = e.embedding.to_lookup_vectors(width)?;
            lookup.register(vectors.with_shorthash(e.shorthash()), tokenizer)?;
        }
        Ok(lookup)
    }
}

/// The sha256 of the file at `path`, lowercase hex: A1111's `Embedding.hash` (its first 12
/// digits are the `shorthash` of `TI hashes`).
///
/// # Errors
/// [`EmbeddingError::Io`] naming the file when it cannot be read.
pub fn file_sha256(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| EmbeddingError::io(path, e))?;
    Ok(hex(&Sha256::digest(&bytes)))
}

/// A1111's `shorthash` of the file at `path`: the first 12 hex digits of its sha256.
///
/// # Errors
/// As [`file_sha256`].
pub fn file_shorthash(path: &Path) -> Result<String> {
    Ok(shorthash_of(&file_sha256(path)?).to_owned())
}

/// The first 12 hex digits of a sha256.
fn shorthash_of(sha256: &str) -> &str {
    &sha256[..12.min(sha256.len())]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Files under `dir`, recursively (links followed, each real folder once), each folder's
/// entries sorted by name so the result does not depend on the file system's order.
fn walk(dir: &Path, depth: usize, seen: &mut HashSet<PathBuf>, out: &mut Vec<PathBuf>) {
    if depth > MAX_DEPTH {
        return;
    }
    let Ok(real) = std::fs::canonicalize(dir) else {
        return;
    };
    if !seen.insert(real) {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    let mut subdirs = Vec::new();
    for p in paths {
        // `metadata` follows links, as os.walk(followlinks=True).
        match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => subdirs.push(p),
            Ok(_) => out.push(p),
            Err(_) => out.push(p), // a dangling link: reported when read
        }
    }
    // os.walk is top-down: a folder's files before its subfolders'.
    for d in subdirs {
        walk(&d, depth + 1, seen, out);
    }
}
