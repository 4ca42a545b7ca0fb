//! The splits in memory, normalised batches, and Burn's `Dataset` trait.
use burn::data::dataset::Dataset;
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::idx::{SIDE, parse_images, parse_labels};
use super::source::{DataOptions, FILES, Located, locate, read_verified};
use super::{DataError, PIXEL_MEAN, PIXEL_STD};

const PIXELS: usize = SIDE * SIDE;

/// One split (train, validation or test) as raw bytes: `N · 784` pixels and `N` labels.
#[derive(Clone, Debug, Default)]
pub struct Split {
    /// Row-major 28×28 images, one byte per pixel.
    pub images: Vec<u8>,
    /// Labels 0..=9.
    pub labels: Vec<u8>,
}

impl Split {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// `true` when the split holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The images at `indices`, in order.
    pub fn select(&self, indices: &[usize]) -> Split {
        let mut images = Vec::with_capacity(indices.len() * PIXELS);
        for &i in indices {
            images.extend_from_slice(&self.images[i * PIXELS..(i + 1) * PIXELS]);
        }
        Split {
            images,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }

    /// How many images of each class.
    pub fn class_counts(&self) -> [usize; 10] {
        let mut counts = [0; 10];
        for &label in &self.labels {
            counts[label as usize] += 1;
        }
        counts
    }

    /// Normalised images `[B, 1, 28, 28]` (`(x/255 - mean) / std`) and labels `[B]` for the
    /// given indices.
    pub fn batch(&self, indices: &[usize], device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
        let scale = 1.0 / (255.0 * PIXEL_STD);
        let shift = PIXEL_MEAN / PIXEL_STD;
        let mut pixels = Vec::with_capacity(indices.len() * PIXELS);
        for &i in indices {
            pixels.extend(
                self.images[i * PIXELS..(i + 1) * PIXELS]
                    .iter()
                    .map(|&p| p as f32 * scale - shift),
            );
        }
        let labels: Vec<i64> = indices.iter().map(|&i| self.labels[i] as i64).collect();
        let images = Tensor::from_data(
            TensorData::new(pixels, [indices.len(), 1, SIDE, SIDE]),
            device,
        );
        let labels = Tensor::from_data(TensorData::new(labels, [indices.len()]), device);
        (images, labels)
    }
}

/// The data a run uses.
#[derive(Clone, Debug)]
pub struct Splits {
    /// Where the files were found.
    pub located: Located,
    /// Training images (after carving out validation and applying the limit).
    pub train: Split,
    /// Validation images carved from the training set (may be empty).
    pub validation: Split,
    /// Test images (after the limit).
    pub test: Split,
}

/// Reads and verifies both files of one split.
pub fn read_split(located: &Located, train: bool, verify: bool) -> Result<Split, DataError> {
    let (images_file, labels_file) = if train {
        (&FILES[0], &FILES[1])
    } else {
        (&FILES[2], &FILES[3])
    };
    let images_path = located.path(images_file);
    let labels_path = located.path(labels_file);
    let images = parse_images(
        &read_verified(&images_path, images_file, verify)?,
        &images_path.display().to_string(),
    )?;
    let labels = parse_labels(
        &read_verified(&labels_path, labels_file, verify)?,
        &labels_path.display().to_string(),
    )?;
    if images.len() != labels.len() * PIXELS {
        return Err(DataError::CountMismatch {
            images: images.len() / PIXELS,
            images_path,
            labels: labels.len(),
            labels_path,
        });
    }
    Ok(Split { images, labels })
}

/// Finds, verifies and loads the data; `validation` training images (a seeded random choice)
/// become the validation split; `train_limit`/`test_limit` keep only the first images (0 = all).
pub fn load_splits(
    options: &DataOptions,
    validation: usize,
    train_limit: usize,
    test_limit: usize,
    seed: u64,
) -> Result<Splits, DataError> {
    let located = locate(options)?;
    let full_train = read_split(&located, true, !options.no_verify)?;
    let test = read_split(&located, false, !options.no_verify)?;
    if validation >= full_train.len() {
        return Err(DataError::ValidationTooLarge {
            validation,
            available: full_train.len(),
        });
    }
    let mut order: Vec<usize> = (0..full_train.len()).collect();
    crate::rng::SplitMix64::new(seed ^ 0x5eed_da7a).shuffle(&mut order);
    let (held_out, kept) = order.split_at(validation);
    let mut kept = kept.to_vec();
    kept.sort_unstable();
    if train_limit > 0 {
        kept.truncate(train_limit);
    }
    let mut held_out = held_out.to_vec();
    held_out.sort_unstable();
    let test_count = if test_limit > 0 {
        test_limit.min(test.len())
    } else {
        test.len()
    };
    Ok(Splits {
        train: full_train.select(&kept),
        validation: full_train.select(&held_out),
        test: test.select(&(0..test_count).collect::<Vec<_>>()),
        located,
    })
}

/// One image as Burn's `MnistItem` has it: pixels 0..=255 as `f32`, and the label.
#[derive(Clone, Debug, PartialEq)]
pub struct FashionMnistItem {
    /// 28×28 pixels, 0..=255.
    pub image: [[f32; SIDE]; SIDE],
    /// Class 0..=9 (see [`CLASS_NAMES`](super::CLASS_NAMES)).
    pub label: u8,
}

/// Fashion-MNIST as a Burn [`Dataset`], like `burn::data::dataset::vision::MnistDataset`, for
/// use with Burn's `DataLoaderBuilder` in other projects.
pub struct FashionMnistDataset {
    split: Split,
}

impl FashionMnistDataset {
    /// The 60,000 training images, found as [`locate`] describes (no download when offline).
    pub fn train() -> Result<Self, DataError> {
        Self::new(&DataOptions::default(), true)
    }

    /// The 10,000 test images.
    pub fn test() -> Result<Self, DataError> {
        Self::new(&DataOptions::default(), false)
    }

    /// One split with explicit options.
    pub fn new(options: &DataOptions, train: bool) -> Result<Self, DataError> {
        let located = locate(options)?;
        Ok(Self {
            split: read_split(&located, train, !options.no_verify)?,
        })
    }

    /// Wraps a split already in memory.
    pub fn from_split(split: Split) -> Self {
        Self { split }
    }
}

impl Dataset<FashionMnistItem> for FashionMnistDataset {
    fn get(&self, index: usize) -> Result<FashionMnistItem, burn::data::dataset::DatasetError> {
        if index >= self.split.len() {
            return Err(burn::data::dataset::DatasetError::new(
                DataError::OutOfRange {
                    index,
                    len: self.split.len(),
                },
            ));
        }
        let mut image = [[0f32; SIDE]; SIDE];
        let pixels = &self.split.images[index * PIXELS..(index + 1) * PIXELS];
        for (row, chunk) in image.iter_mut().zip(pixels.chunks(SIDE)) {
            for (value, &p) in row.iter_mut().zip(chunk) {
                *value = p as f32;
            }
        }
        Ok(FashionMnistItem {
            image,
            label: self.split.labels[index],
        })
    }

    fn len(&self) -> usize {
        self.split.len()
    }
}

/// Batches [`FashionMnistItem`]s for Burn's `DataLoaderBuilder`: normalised images
/// `[B, 1, 28, 28]` and labels `[B]`, exactly as [`Split::batch`] makes them for `fmnist train`.
#[derive(Clone, Copy, Debug, Default)]
pub struct FashionMnistBatcher;

impl burn::data::dataloader::batcher::Batcher<FashionMnistItem, (Tensor<4>, Tensor<1, Int>)>
    for FashionMnistBatcher
{
    fn batch(&self, items: Vec<FashionMnistItem>, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
        let split = Split {
            images: items
                .iter()
                .flat_map(|item| item.image.iter().flatten().map(|&p| p as u8))
                .collect(),
            labels: items.iter().map(|item| item.label).collect(),
        };
        let indices: Vec<usize> = (0..items.len()).collect();
        split.batch(&indices, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Split {
        Split {
            images: (0..3 * PIXELS).map(|i| (i / PIXELS * 100) as u8).collect(),
            labels: vec![2, 0, 9],
        }
    }

    #[test]
    fn batches_are_normalised_with_the_training_statistics() {
        let (images, labels) = tiny().batch(&[2, 0], &Device::flex());
        assert_eq!(images.dims(), [2, 1, 28, 28]);
        let values: Vec<f32> = images.into_data().try_into_vec().unwrap();
        let expected = (200.0 / 255.0 - PIXEL_MEAN) / PIXEL_STD;
        assert!((values[0] - expected).abs() < 1e-5);
        assert!((values[PIXELS] + PIXEL_MEAN / PIXEL_STD).abs() < 1e-5);
        assert_eq!(
            labels
                .into_data()
                .convert::<i64>()
                .try_into_vec::<i64>()
                .unwrap(),
            vec![9, 2]
        );
    }

    #[test]
    fn dataset_trait_serves_items() {
        let dataset = FashionMnistDataset::from_split(tiny());
        assert_eq!(dataset.len(), 3);
        let item = dataset.get(1).unwrap();
        assert_eq!((item.label, item.image[27][27]), (0, 100.0));
        // Out of range is an error, not a panic (issue 13: no panic on bad input).
        let error = dataset.get(3).unwrap_err().to_string();
        assert!(error.contains("index 3 out of range"), "{error}");
    }
}
