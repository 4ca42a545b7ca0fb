//! [`DataError`]: what can be wrong with the data, each case with the file and the fix.
use std::path::PathBuf;

/// How to get the data, appended to every "not found" error.
const FIXES: &str = "Fix it in one of three ways:\n  \
     1. apt-get install dataset-fashion-mnist (installs /usr/share/datasets/fashion-mnist)\n  \
     2. pass --data-dir DIR (or set data.dir, or $FASHION_MNIST_DIR) to a directory with the four files\n  \
     3. run once with internet access and without --offline to download them into the cache";

/// Anything wrong with the data. The message names the file and how to fix it; the
/// underlying I/O, gzip, HTTP or PNG error is the [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// A file or directory could not be read, written, created or moved.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// `"read"`, `"write"`, `"create"`, `"open"`, `"move into place"`.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A `.gz` file that does not decompress.
    #[error("{} is not a valid gzip file; delete it and fetch it again", path.display())]
    Gzip {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        source: std::io::Error,
    },
    /// A file that decompresses to more than any IDX file of this size could hold.
    #[error(
        "{} decompresses to more than {limit} bytes, more than an IDX file of 28×28 images may \
         hold; it is not Fashion-MNIST (replace it with the original file)",
        path.display()
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The most bytes read before giving up.
        limit: u64,
    },
    /// An IDX file whose header or body is not what Fashion-MNIST has.
    #[error("{what}: {problem}")]
    Malformed {
        /// The file (or a name for the bytes).
        what: String,
        /// What is wrong: wrong magic, truncated, wrong image size, label out of range.
        problem: String,
    },
    /// The directory the user named lacks some of the four files.
    #[error(
        "the data directory {} lacks {} (each may be gzipped, ending in .gz); point --data-dir \
         (or data.dir) at a directory holding all four Fashion-MNIST files",
        dir.display(),
        missing.join(", ")
    )]
    MissingFiles {
        /// The directory.
        dir: PathBuf,
        /// The base names of the missing files.
        missing: Vec<&'static str>,
    },
    /// No directory holds the data, and downloading was not possible or not allowed.
    #[error("Fashion-MNIST not found{why}. Looked in:\n{}\n{FIXES}", looked.join("\n"))]
    NotFound {
        /// Why there was no download: `" (--offline, so no download)"`, …
        why: String,
        /// The places searched, one per line.
        looked: Vec<String>,
    },
    /// No directory holds the data and the download failed.
    #[error(
        "Fashion-MNIST not found, and downloading it from {mirror} failed. Looked in:\n{}\n{FIXES}",
        looked.join("\n")
    )]
    DownloadFailed {
        /// The mirror.
        mirror: String,
        /// The places searched.
        looked: Vec<String>,
        /// What went wrong while downloading.
        source: Box<DataError>,
    },
    /// An HTTP request that failed.
    #[error("GET {url}")]
    Http {
        /// The URL.
        url: String,
        /// The HTTP client's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A file whose bytes are not the canonical Fashion-MNIST file.
    #[error(
        "{} does not match the canonical Fashion-MNIST {name} (SHA-256 of its decompressed bytes \
         is {actual}, expected {expected}); replace it with the original file, or pass \
         --no-verify to use a modified copy on purpose",
        path.display()
    )]
    Checksum {
        /// The file.
        path: PathBuf,
        /// Which of the four files it should be.
        name: &'static str,
        /// Its SHA-256.
        actual: String,
        /// The canonical SHA-256.
        expected: &'static str,
    },
    /// Image and label files of different lengths.
    #[error(
        "{} has {images} images but {} has {labels} labels",
        images_path.display(),
        labels_path.display()
    )]
    CountMismatch {
        /// The image file.
        images_path: PathBuf,
        /// Its image count.
        images: usize,
        /// The label file.
        labels_path: PathBuf,
        /// Its label count.
        labels: usize,
    },
    /// `data.validation` takes every training image.
    #[error(
        "data.validation = {validation} leaves no training images (the training set has {available})"
    )]
    ValidationTooLarge {
        /// The requested validation images.
        validation: usize,
        /// The training images there are.
        available: usize,
    },
    /// A dataset index past the end.
    #[error("index {index} out of range for {len} images")]
    OutOfRange {
        /// The index asked for.
        index: usize,
        /// The number of images.
        len: usize,
    },
    /// A PNG that does not decode.
    #[cfg(feature = "image")]
    #[error("{} is not a readable PNG", path.display())]
    Png {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        source: png::DecodingError,
    },
    /// A PNG wider or taller than [`crate::data::image::MAX_IMAGE_SIDE`], refused before its
    /// pixels are decoded.
    #[cfg(feature = "image")]
    #[error(
        "{} is {width} × {height} pixels; fmnist predict reads images of at most {max} × {max} \
         (they are shrunk to 28 × 28 anyway): scale it down first",
        path.display()
    )]
    ImageTooLarge {
        /// The file.
        path: PathBuf,
        /// Its width, as its header says.
        width: u32,
        /// Its height, as its header says.
        height: u32,
        /// The limit.
        max: u32,
    },
}

impl DataError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }

    pub(crate) fn malformed(what: &str, problem: impl Into<String>) -> Self {
        Self::Malformed {
            what: what.into(),
            problem: problem.into(),
        }
    }
}
