//! Writing files so that a crash never leaves half a file behind, and sweeping up the
//! temporaries a killed process left.
//!
//! The helpers return [`FsError`], an I/O error naming the file or folder; [`CoreError`](crate::CoreError)
//! converts from it, so callers whose error is [`CoreError`](crate::CoreError) use `?`.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

/// A file or folder the helpers of this module could not write, read or remove.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}", path = path.display())]
#[non_exhaustive]
pub struct FsError {
    /// The file or folder.
    pub path: PathBuf,
    /// What the operating system said.
    #[source]
    pub source: std::io::Error,
}

impl FsError {
    fn new(path: &Path, source: std::io::Error) -> Self {
        Self {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Writes `bytes` to a temporary file beside `path`, flushes it to disk, then renames it over
/// `path`. Readers see the old file or the new one, never a mix. Creates missing parent
/// folders.
///
/// # Errors
/// [`FsError`] naming the file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    let io = |e| FsError::new(path, e);
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
        // The write already failed and is reported; a temporary that cannot be removed
        // either is swept by `remove_stale_temporaries` on a later run.
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
/// those of [`write_atomic`] whose writer is no longer running. A temporary of a live process
/// (this one, or another run writing beside it) is kept: removing it would make that
/// process's rename fail. Returns how many were removed. A missing folder has none.
///
/// Whether a process is alive is read from `/proc/<pid>` on Linux; where that cannot be
/// known (no `/proc`, other systems) every temporary is kept: litter is harmless, deleting a
/// live writer's file is not.
///
/// # Errors
/// [`FsError`] naming the folder or the file that could not be removed.
pub fn remove_stale_temporaries(dir: &Path) -> Result<usize, FsError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(FsError::new(dir, e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| FsError::new(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = temporary_pid(&name) else {
            continue;
        };
        if process_is_dead(pid) {
            let path = entry.path();
            match std::fs::remove_file(&path) {
                Ok(()) => removed += 1,
                // Its writer renamed or removed it meanwhile.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(FsError::new(&path, e)),
            }
        }
    }
    Ok(removed)
}

/// The writer's process id of a [`write_atomic`] temporary (`.<name>.<pid>.tmp`).
fn temporary_pid(file_name: &str) -> Option<u32> {
    if !is_temporary(file_name) {
        return None;
    }
    let inner = file_name.strip_prefix('.')?.strip_suffix(".tmp")?;
    inner.rsplit_once('.')?.1.parse().ok()
}

/// Whether process `pid` has certainly ended: `false` for this process, and whenever it
/// cannot be told (see [`remove_stale_temporaries`]).
fn process_is_dead(pid: u32) -> bool {
    if pid == std::process::id() {
        return false;
    }
    if cfg!(target_os = "linux") {
        let proc = Path::new("/proc");
        // Without a mounted /proc nothing can be told: keep everything.
        proc.join("self").exists() && !proc.join(pid.to_string()).exists()
    } else {
        false
    }
}

/// The files under `dir` whose extension is one of `extensions` (case-insensitive), in its
/// subfolders too down to `max_depth` levels (a model folder's layout, without following a
/// link cycle forever), in the order the system lists them.
///
/// # Errors
/// [`FsError`] naming a folder that cannot be listed.
pub fn files_with_extensions(
    dir: &Path,
    extensions: &[&str],
    max_depth: usize,
) -> Result<Vec<PathBuf>, FsError> {
    let mut out = Vec::new();
    collect_files(dir, extensions, max_depth, &mut out)?;
    Ok(out)
}

fn collect_files(
    dir: &Path,
    extensions: &[&str],
    depth_left: usize,
    out: &mut Vec<PathBuf>,
) -> Result<(), FsError> {
    let io = |source| FsError::new(dir, source);
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            if depth_left > 0 {
                collect_files(&path, extensions, depth_left - 1, out)?;
            }
        } else if path.extension().is_some_and(|e| {
            extensions
                .iter()
                .any(|wanted| e.eq_ignore_ascii_case(wanted))
        }) {
            out.push(path);
        }
    }
    Ok(())
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
    fn stale_temporaries_of_dead_processes_are_removed_live_ones_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        // A child that has exited and been reaped: its pid is dead (until reused, which
        // would only keep the file).
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let dead_pid = child.id();
        child.wait().expect("wait");
        // A live process other than this one.
        let mut live = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let stale = dir.path().join(format!(".a.pt.{dead_pid}.tmp"));
        let own = dir.path().join(format!(".b.pt.{}.tmp", std::process::id()));
        let other_live = dir.path().join(format!(".c.pt.{}.tmp", live.id()));
        let kept = dir.path().join(".hidden");
        for p in [&stale, &own, &other_live, &kept] {
            std::fs::write(p, b"x").expect("write");
        }
        let removed = remove_stale_temporaries(dir.path()).expect("clean");
        let _ = live.kill();
        let _ = live.wait();
        if cfg!(target_os = "linux") && Path::new("/proc/self").exists() {
            assert_eq!(removed, 1);
            assert!(!stale.exists());
        } else {
            assert_eq!(removed, 0);
        }
        assert!(own.exists() && other_live.exists() && kept.exists());
        assert!(is_temporary(".loss.csv.42.tmp"));
        assert_eq!(temporary_pid(".loss.csv.42.tmp"), Some(42));
        assert!(!is_temporary(".tmp") && !is_temporary("a.tmp") && !is_temporary("..1.tmp"));
    }
}
