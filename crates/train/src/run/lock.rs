//! One writer per run directory: an exclusive OS lock on its `run.lock`, which the kernel
//! releases however the process ends (SIGKILL included), so a stale lock cannot outlive its
//! holder. The file holds the holder's PID for the refusal message.
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Held while a process writes a run directory; dropping it releases the lock.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

/// Why a run directory could not be locked.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds it.
    Busy {
        /// The lock file.
        path: std::path::PathBuf,
        /// The holder's PID, as it wrote it.
        pid: Option<u32>,
    },
    /// The lock file could not be opened or locked.
    Io(std::path::PathBuf, std::io::Error),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Busy { path, pid } => write!(
                f,
                "{} is in use by another fmnist process{}: wait for it to finish, or use \
                 another --out directory",
                path.parent().unwrap_or(path).display(),
                pid.map(|pid| format!(" (PID {pid})")).unwrap_or_default()
            ),
            Self::Io(path, error) => write!(f, "cannot lock {}: {error}", path.display()),
        }
    }
}

impl std::error::Error for LockError {}

impl RunLock {
    /// Takes the exclusive lock on `path` (created if needed), or says who holds it.
    pub fn acquire(path: &Path) -> Result<Self, LockError> {
        let io = |error| LockError::Io(path.into(), error);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0).map_err(io)?;
                file.seek(SeekFrom::Start(0)).map_err(io)?;
                write!(file, "{}", std::process::id()).map_err(io)?;
                file.flush().map_err(io)?;
                Ok(Self { _file: file })
            }
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                Err(LockError::Busy {
                    path: path.into(),
                    pid: text.trim().parse().ok(),
                })
            }
            Err(TryLockError::Error(error)) => Err(io(error)),
        }
    }
}
