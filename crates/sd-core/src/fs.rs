//! Writing files so that a crash never leaves half a file behind.

use std::{io::Write, path::Path};

use crate::error::{CoreError, Result};

/// Writes `bytes` to a temporary file beside `path`, flushes it to disk, then renames it over
/// `path`. Readers see the old file or the new one, never a mix. Creates missing parent
/// folders.
///
/// # Errors
/// [`CoreError::Io`] naming the file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |e| CoreError::io(path, e);
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent).map_err(io)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = parent.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.map_err(io)
}

/// Whether `file_name` is a temporary file of [`write_atomic`] (`.<name>.<pid>.tmp`).
pub fn is_temporary(file_name: &str) -> bool {
    let Some(inner) = file_name
        .strip_prefix('.')
        .and_then(|n| n.strip_suffix(".tmp"))
    else {
        return false;
    };
    inner
        .rsplit_once('.')
        .is_some_and(|(name, pid)| !name.is_empty() && pid.parse::<u32>().is_ok())
}

/// Removes the temporary files that a killed process left in `dir` (not in its subfolders):
/// those of [`write_atomic`] written by another process. Returns how many were removed.
/// A missing folder has none.
///
/// # Errors
/// [`CoreError::Io`] naming the folder or the file that could not be removed.
pub fn remove_stale_temporaries(dir: &Path) -> Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(CoreError::io(dir, e)),
    };
    let own = format!(".{}.tmp", std::process::id());
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| CoreError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_temporary(&name) && !name.ends_with(&own) {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|e| CoreError::io(&path, e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_contents_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("nested/out.bin");
        write_atomic(&path, b"first").expect("write");
        write_atomic(&path, b"second").expect("rewrite");
        assert_eq!(std::fs::read(&path).expect("read"), b"second");
        let names: Vec<_> = std::fs::read_dir(path.parent().expect("parent"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.bin")]);
    }

    #[test]
    fn stale_temporaries_of_other_processes_are_removed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let stale = dir.path().join(".a.pt.1.tmp");
        let own = dir.path().join(format!(".b.pt.{}.tmp", std::process::id()));
        let kept = dir.path().join(".hidden");
        for p in [&stale, &own, &kept] {
            std::fs::write(p, b"x").expect("write");
        }
        assert_eq!(remove_stale_temporaries(dir.path()).expect("clean"), 1);
        assert!(!stale.exists() && own.exists() && kept.exists());
        assert!(is_temporary(".loss.csv.42.tmp"));
        assert!(!is_temporary(".tmp") && !is_temporary("a.tmp") && !is_temporary("..1.tmp"));
    }
}
