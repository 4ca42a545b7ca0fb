//! Replacing a file so that a reader sees the old version or the new one, never a mix, and
//! two writers never share a temporary file: the new bytes go to a temporary file with a
//! unique name in the target's directory (same file system, so the rename is atomic), are
//! fsynced, and the temporary file is renamed over the target and the directory fsynced.
//! Shards of one study that share `--out` write report.md and results.csv this way at the same
//! time; the last rename wins and every version is whole. A write that fails (full disk)
//! removes its temporary file and leaves the target as it was.
use std::io::{self, Write};
use std::path::Path;

use tempfile::NamedTempFile;

/// The directory a file is in (`.` for a bare file name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// A new, empty temporary file beside `path`, named `.NAME.XXXXXX.SUFFIX` (plotters picks the
/// image format from the suffix). It is removed when dropped unless [`persist`] moves it.
/// Its mode is 0666 less the umask, as for a file created the ordinary way (tempfile's own
/// default, 0600, would hide results from the rest of a group).
pub(crate) fn temporary_beside(path: &Path, suffix: &str) -> io::Result<NamedTempFile> {
    let prefix = format!(
        ".{}.",
        path.file_name().unwrap_or_default().to_string_lossy()
    );
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(suffix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(parent(path))
}

/// Fsyncs `file` (whatever was written to it, through it or through its path) and renames
/// it over `path`, then fsyncs the directory.
pub(crate) fn persist(file: NamedTempFile, path: &Path) -> io::Result<()> {
    std::fs::File::open(file.path())?.sync_all()?;
    file.persist(path).map_err(|error| error.error)?;
    std::fs::File::open(parent(path))?.sync_all()
}

/// Replaces `path` with `bytes` atomically.
pub(crate) fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = temporary_beside(path, ".tmp")?;
    file.write_all(bytes)?;
    persist(file, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four writers replace one file 100 times each with their own 64 KiB pattern while a
    /// reader watches: every write succeeds, and every version read is one writer's whole
    /// pattern. (With one fixed temporary name per target, writers truncate each other's
    /// temporary file and rename it from under each other.)
    #[test]
    fn concurrent_writers_never_tear_or_lose_a_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.csv");
        write(&path, &[b'0'; 1 << 16]).unwrap();
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let writers: Vec<_> = (b'a'..b'e')
                .map(|byte| {
                    let path = &path;
                    scope.spawn(move || {
                        for _ in 0..100 {
                            write(path, &[byte; 1 << 16]).unwrap();
                        }
                    })
                })
                .collect();
            scope.spawn(|| {
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let bytes = std::fs::read(&path).unwrap();
                    assert_eq!(bytes.len(), 1 << 16);
                    assert!(bytes.iter().all(|b| *b == bytes[0]), "a torn version");
                }
            });
            let results: Vec<_> = writers.into_iter().map(|writer| writer.join()).collect();
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            assert!(results.iter().all(Result::is_ok), "a write failed");
        });
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn replaces_whole_files_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.md");
        write(&path, b"first").unwrap();
        write(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "{names:?}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o644, 0o644, "{mode:o}: readable like any new file");
        }
        // Unique temporary names: two at once beside one target do not collide.
        let a = temporary_beside(&path, ".png").unwrap();
        let b = temporary_beside(&path, ".png").unwrap();
        assert_ne!(a.path(), b.path());
        assert!(a.path().to_string_lossy().ends_with(".png"));
        drop((a, b));
        // A directory that is not there: an error, no panic, nothing written.
        assert!(write(&dir.path().join("missing/x.csv"), b"x").is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
