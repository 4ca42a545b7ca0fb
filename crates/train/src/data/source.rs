//! Where the four Fashion-MNIST files come from, and checking that they are the real ones.
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::DataError;
use super::idx::read_maybe_gz;

/// One of the four files: its base name and the SHA-256 of its decompressed bytes.
#[derive(Clone, Copy, Debug)]
pub struct DataFile {
    /// Base name without `.gz`, e.g. `train-images-idx3-ubyte`.
    pub name: &'static str,
    /// SHA-256 of the decompressed IDX bytes (source-independent).
    pub sha256: &'static str,
}

/// The canonical files (checksums from the official release, as in ../shared/DATA.md).
pub const FILES: [DataFile; 4] = [
    DataFile {
        name: "train-images-idx3-ubyte",
        sha256: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    },
    DataFile {
        name: "train-labels-idx1-ubyte",
        sha256: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    },
    DataFile {
        name: "t10k-images-idx3-ubyte",
        sha256: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    },
    DataFile {
        name: "t10k-labels-idx1-ubyte",
        sha256: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
];

/// Where the Debian/Ubuntu package `dataset-fashion-mnist` installs the files.
pub const DEBIAN_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// The official mirror (plain HTTP).
pub const MIRROR: &str = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com";

/// How to look for the data.
#[derive(Clone, Debug, Default)]
pub struct DataOptions {
    /// A directory the user named (`--data-dir` or `data.dir`): used alone when given.
    pub dir: Option<PathBuf>,
    /// Never download.
    pub offline: bool,
    /// Skip the SHA-256 check (for modified copies of the data set).
    pub no_verify: bool,
    /// Override the mirror (tests use a local server).
    pub mirror: Option<String>,
    /// Override the cache directory.
    pub cache_dir: Option<PathBuf>,
}

/// A directory that holds the four files, and how it was found.
#[derive(Clone, Debug)]
pub struct Located {
    /// The directory.
    pub dir: PathBuf,
    /// `"--data-dir"`, `"$FASHION_MNIST_DIR"`, `"cache"`, `"Debian package"` or `"downloaded"`.
    pub how: String,
}

impl Located {
    /// The path of one file, `.gz` or raw, whichever exists.
    pub fn path(&self, file: &DataFile) -> PathBuf {
        file_in(&self.dir, file).expect("located directories hold every file")
    }
}

fn file_in(dir: &Path, file: &DataFile) -> Option<PathBuf> {
    [format!("{}.gz", file.name), file.name.to_string()]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

fn missing_in(dir: &Path) -> Vec<&'static str> {
    FILES
        .iter()
        .filter(|f| file_in(dir, f).is_none())
        .map(|f| f.name)
        .collect()
}

/// The user cache directory for the data: `$XDG_CACHE_HOME/fashion-mnist` or
/// `~/.cache/fashion-mnist`.
pub fn default_cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|base| base.join("fashion-mnist"))
}

/// Finds the data: the named directory alone if one is given; else `$FASHION_MNIST_DIR`, the
/// cache, the Debian package, then a download into the cache (unless offline).
pub fn locate(options: &DataOptions) -> Result<Located, DataError> {
    if let Some(dir) = &options.dir {
        let missing = missing_in(dir);
        if missing.is_empty() {
            return Ok(Located {
                dir: dir.clone(),
                how: "--data-dir".into(),
            });
        }
        return Err(DataError::MissingFiles {
            dir: dir.clone(),
            missing,
        });
    }
    let cache = options.cache_dir.clone().or_else(default_cache_dir);
    let mut candidates: Vec<(PathBuf, &str)> = Vec::new();
    if let Some(env) = std::env::var_os("FASHION_MNIST_DIR") {
        candidates.push((PathBuf::from(env), "$FASHION_MNIST_DIR"));
    }
    if let Some(cache) = &cache {
        candidates.push((cache.clone(), "cache"));
    }
    candidates.push((PathBuf::from(DEBIAN_DIR), "Debian package"));
    for (dir, how) in &candidates {
        if missing_in(dir).is_empty() {
            return Ok(Located {
                dir: dir.clone(),
                how: how.to_string(),
            });
        }
    }
    let looked: Vec<String> = candidates
        .iter()
        .map(|(dir, how)| format!("  {} ({how})", dir.display()))
        .collect();
    if options.offline {
        return Err(DataError::NotFound {
            why: " (--offline, so no download)".into(),
            looked,
        });
    }
    let Some(cache) = cache else {
        return Err(DataError::NotFound {
            why: " and no cache directory to download into ($HOME is unset)".into(),
            looked,
        });
    };
    #[cfg(feature = "download")]
    {
        let mirror = options.mirror.as_deref().unwrap_or(MIRROR);
        download_all(mirror, &cache, !options.no_verify).map_err(|error| {
            DataError::DownloadFailed {
                mirror: mirror.into(),
                looked,
                source: Box::new(error),
            }
        })?;
        Ok(Located {
            dir: cache,
            how: "downloaded".into(),
        })
    }
    #[cfg(not(feature = "download"))]
    {
        let _ = cache;
        Err(DataError::NotFound {
            why: " (built without the `download` feature, so no download)".into(),
            looked,
        })
    }
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads one file (decompressing it) and checks its SHA-256 unless `verify` is false.
pub fn read_verified(path: &Path, file: &DataFile, verify: bool) -> Result<Vec<u8>, DataError> {
    let bytes = read_maybe_gz(path)?;
    if verify {
        let actual = sha256_hex(&bytes);
        if actual != file.sha256 {
            return Err(DataError::Checksum {
                path: path.into(),
                name: file.name,
                actual,
                expected: file.sha256,
            });
        }
    }
    Ok(bytes)
}

#[cfg(feature = "download")]
fn download_all(mirror: &str, cache: &Path, verify: bool) -> Result<(), DataError> {
    std::fs::create_dir_all(cache).map_err(DataError::io("create", cache))?;
    for file in &FILES {
        if file_in(cache, file).is_some() {
            continue;
        }
        let url = format!("{mirror}/{}.gz", file.name);
        let target = cache.join(format!("{}.gz", file.name));
        download(&url, &target, file, verify)?;
    }
    Ok(())
}

#[cfg(feature = "download")]
/// Downloads `url` to `target` through a temporary file renamed into place only once complete
/// and verified, so an interrupted download never leaves a half-written file behind.
fn download(url: &str, target: &Path, file: &DataFile, verify: bool) -> Result<(), DataError> {
    use std::io::{Read, Write};
    let http = |source: Box<dyn std::error::Error + Send + Sync>| DataError::Http {
        url: url.into(),
        source,
    };
    let response = ureq::get(url).call().map_err(|e| http(Box::new(e)))?;
    let total: Option<u64> = response
        .header("Content-Length")
        .and_then(|v| v.parse().ok());
    let mut reader = response.into_reader();
    let mut body = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    let mut progress = crate::progress::Progress::new(&format!("downloading {}", file.name));
    loop {
        let n = reader.read(&mut chunk).map_err(|e| http(Box::new(e)))?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
        if let Some(total) = total {
            progress.update(body.len() as f64 / total as f64, "");
        }
    }
    progress.finish("");
    // A unique temporary name: two processes downloading at once never write one file. A
    // download that fails verification is removed with its temporary file.
    let mut tmp = crate::atomic::temporary_beside(target, ".partial")
        .map_err(DataError::io("write", target))?;
    tmp.write_all(&body)
        .map_err(DataError::io("write", tmp.path()))?;
    read_verified(tmp.path(), file, verify)?;
    crate::atomic::persist(tmp, target).map_err(DataError::io("move into place", target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_directory_without_files_lists_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("train-images-idx3-ubyte.gz"), b"x").unwrap();
        let options = DataOptions {
            dir: Some(dir.path().into()),
            ..Default::default()
        };
        let error = locate(&options).unwrap_err().to_string();
        assert!(error.contains("lacks train-labels-idx1-ubyte"), "{error}");
        assert!(!error.contains("lacks train-images"), "{error}");
    }

    #[test]
    fn offline_failure_lists_places_and_fixes() {
        let dir = tempfile::tempdir().unwrap();
        let options = DataOptions {
            offline: true,
            cache_dir: Some(dir.path().join("cache")),
            ..Default::default()
        };
        // Only meaningful where neither the env variable nor the Debian package provide data.
        if std::env::var_os("FASHION_MNIST_DIR").is_some() || Path::new(DEBIAN_DIR).exists() {
            return;
        }
        let error = locate(&options).unwrap_err().to_string();
        assert!(
            error.contains("Debian package") && error.contains("--data-dir"),
            "{error}"
        );
    }

    #[test]
    fn checksum_mismatch_is_an_error_unless_disabled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t10k-labels-idx1-ubyte");
        std::fs::write(&path, super::super::idx::encode(&[2], &[1, 2])).unwrap();
        let error = read_verified(&path, &FILES[3], true)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("does not match") && error.contains("--no-verify"),
            "{error}"
        );
        assert!(read_verified(&path, &FILES[3], false).is_ok());
    }

    #[test]
    #[cfg(feature = "download")]
    fn download_from_a_local_mirror_is_verified_and_atomic() {
        use std::io::{BufRead, Write};
        use std::net::TcpListener;
        // A one-request-per-connection HTTP server on loopback serving gzipped bytes.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let payload = {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&super::super::idx::encode(&[1], &[7]))
                .unwrap();
            gz.finish().unwrap()
        };
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 2 {
                line.clear();
            }
            let mut stream = stream;
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                payload.len()
            )
            .unwrap();
            stream.write_all(&payload).unwrap();
        });
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t10k-labels-idx1-ubyte.gz");
        let url = format!("http://{address}/t10k-labels-idx1-ubyte.gz");
        // The bytes are not the canonical file, so verification must refuse and leave nothing.
        let error = download(&url, &target, &FILES[3], true)
            .unwrap_err()
            .to_string();
        server.join().unwrap();
        assert!(error.contains("does not match"), "{error}");
        assert!(!target.exists());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "no partial file left"
        );
    }
}
