//! Fashion-MNIST: find the files, verify them, parse them, serve batches.
//!
//! - [`idx`]: the IDX format (gzipped or raw), validated.
//! - [`source`]: where the files come from (a directory, `$FASHION_MNIST_DIR`, the cache, the
//!   Debian package, the official mirror) and their SHA-256.
//! - [`dataset`]: the splits in memory, normalised batches, and Burn's `Dataset` trait.
//! - [`image`]: user PNGs as 28×28 grayscale, for `fmnist predict`.
pub mod dataset;
mod error;
pub mod idx;
#[cfg(feature = "image")]
pub mod image;
pub mod source;

pub use dataset::{FashionMnistBatcher, FashionMnistDataset, FashionMnistItem, Split, load_splits};
pub use source::{DataOptions, FILES, Located, locate};

/// The ten classes, in label order.
pub const CLASS_NAMES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Training-set pixel mean on the [0, 1] scale (../shared/DATA.md).
pub const PIXEL_MEAN: f32 = 0.2860;
/// Training-set pixel standard deviation on the [0, 1] scale.
pub const PIXEL_STD: f32 = 0.3530;

pub use error::DataError;
