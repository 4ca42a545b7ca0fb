//! The IDX format: big-endian header `0 0 type ndims`, one u32 per dimension, then row-major data.
use std::io::Read;
use std::path::Path;

use super::DataError;

/// Image side length.
pub const SIDE: usize = 28;
const UNSIGNED_BYTE: u8 = 0x08;

/// Reads a file, decompressing it when it starts with the gzip magic.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path)
        .map_err(|e| DataError(format!("cannot read {}: {e}", path.display())))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| {
                DataError(format!(
                    "{} is not a valid gzip file ({e}); delete it and fetch it again",
                    path.display()
                ))
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn header(bytes: &[u8], ndims: usize, what: &str) -> Result<Vec<usize>, DataError> {
    let len = 4 + 4 * ndims;
    let expected_magic = [0, 0, UNSIGNED_BYTE, ndims as u8];
    if bytes.len() >= 4 && bytes[..4] != expected_magic {
        return Err(DataError(format!(
            "{what}: wrong magic {:02x?}, expected {:02x?} (an IDX file of {ndims}-D unsigned bytes)",
            &bytes[..4],
            expected_magic
        )));
    }
    if bytes.len() < len {
        return Err(DataError(format!(
            "{what}: truncated header ({} bytes, need {len})",
            bytes.len()
        )));
    }
    Ok((0..ndims)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize)
        .collect())
}

fn body<'a>(
    bytes: &'a [u8],
    offset: usize,
    count: usize,
    what: &str,
) -> Result<&'a [u8], DataError> {
    let have = bytes.len() - offset;
    if have != count {
        let problem = if have < count {
            "truncated"
        } else {
            "too long"
        };
        return Err(DataError(format!(
            "{what}: {problem}: the header promises {count} bytes of data, the file has {have}"
        )));
    }
    Ok(&bytes[offset..])
}

/// Parses an image file: `[N, 28, 28]` unsigned bytes. Returns the pixels, `N · 784` of them.
pub fn parse_images(bytes: &[u8], what: &str) -> Result<Vec<u8>, DataError> {
    let dims = header(bytes, 3, what)?;
    if dims[1] != SIDE || dims[2] != SIDE {
        return Err(DataError(format!(
            "{what}: images are {}×{}, expected {SIDE}×{SIDE}",
            dims[1], dims[2]
        )));
    }
    Ok(body(bytes, 16, dims[0] * SIDE * SIDE, what)?.to_vec())
}

/// Parses a label file: `[N]` unsigned bytes in 0..=9.
pub fn parse_labels(bytes: &[u8], what: &str) -> Result<Vec<u8>, DataError> {
    let dims = header(bytes, 1, what)?;
    let labels = body(bytes, 8, dims[0], what)?;
    if let Some(position) = labels.iter().position(|l| *l > 9) {
        return Err(DataError(format!(
            "{what}: label {} at index {position} is outside 0..=9",
            labels[position]
        )));
    }
    Ok(labels.to_vec())
}

/// IDX bytes for images or labels (used by tests and tools that write data sets).
pub fn encode(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, UNSIGNED_BYTE, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&(*d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_files_parse() {
        let pixels: Vec<u8> = (0..2 * 784).map(|i| (i % 256) as u8).collect();
        let images = parse_images(&encode(&[2, 28, 28], &pixels), "images").unwrap();
        assert_eq!(images, pixels);
        let labels = parse_labels(&encode(&[3], &[0, 9, 4]), "labels").unwrap();
        assert_eq!(labels, [0, 9, 4]);
    }

    #[test]
    fn truncated_files_are_rejected() {
        let mut bytes = encode(&[2, 28, 28], &vec![0; 2 * 784]);
        bytes.truncate(bytes.len() - 1);
        let error = parse_images(&bytes, "images").unwrap_err().0;
        assert!(error.contains("truncated"), "{error}");
        let error = parse_labels(&[0, 0, 8], "labels").unwrap_err().0;
        assert!(error.contains("truncated header"), "{error}");
    }

    #[test]
    fn wrong_magic_is_rejected() {
        let bytes = encode(&[1], &[3]);
        let error = parse_images(&bytes, "images").unwrap_err().0;
        assert!(error.contains("wrong magic"), "{error}");
    }

    #[test]
    fn wrong_counts_are_rejected() {
        let error = parse_labels(&encode(&[5], &[1, 2, 3]), "labels")
            .unwrap_err()
            .0;
        assert!(
            error.contains("promises 5 bytes") && error.contains("has 3"),
            "{error}"
        );
        let error = parse_labels(&encode(&[1], &[1, 2]), "labels")
            .unwrap_err()
            .0;
        assert!(error.contains("too long"), "{error}");
        let error = parse_images(&encode(&[1, 27, 28], &[0; 27 * 28]), "images")
            .unwrap_err()
            .0;
        assert!(error.contains("27×28"), "{error}");
    }

    #[test]
    fn labels_outside_the_ten_classes_are_rejected() {
        let error = parse_labels(&encode(&[3], &[1, 10, 2]), "labels")
            .unwrap_err()
            .0;
        assert!(error.contains("label 10 at index 1"), "{error}");
    }
}
