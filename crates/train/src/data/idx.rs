//! The IDX format: big-endian header `0 0 type ndims`, one u32 per dimension, then row-major data.
use std::io::Read;
use std::path::Path;

use super::DataError;

/// Image side length.
pub const SIDE: usize = 28;
const UNSIGNED_BYTE: u8 = 0x08;

/// The most bytes a decompressed IDX file may have: 1 GiB, twenty times Fashion-MNIST's
/// largest file, so a gzip bomb (or a header that claims 2^32 images) is refused before it
/// fills memory.
pub const MAX_DECOMPRESSED: u64 = 1 << 30;

/// Reads a file, decompressing it when it starts with the gzip magic. A gzipped file is
/// decompressed only as far as its IDX header promises (plus one byte, so that a file that is
/// too long is still reported as such), and never past [`MAX_DECOMPRESSED`].
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(DataError::io("read", path))?;
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let gzip = |source| DataError::Gzip {
        path: path.into(),
        source,
    };
    let mut decoder = flate2::read::GzDecoder::new(raw.as_slice());
    let mut out = Vec::new();
    (&mut decoder).take(4).read_to_end(&mut out).map_err(gzip)?;
    if out.len() == 4 {
        let header_len = 4 + 4 * out[3] as u64;
        (&mut decoder)
            .take(header_len - 4)
            .read_to_end(&mut out)
            .map_err(gzip)?;
    }
    let limit = promised_len(&out).map_or(MAX_DECOMPRESSED, |n| n.saturating_add(1));
    if limit > MAX_DECOMPRESSED {
        return Err(DataError::TooLarge {
            path: path.into(),
            limit: MAX_DECOMPRESSED,
        });
    }
    let have = out.len() as u64;
    decoder
        .take(limit.saturating_sub(have))
        .read_to_end(&mut out)
        .map_err(gzip)?;
    if out.len() as u64 >= MAX_DECOMPRESSED {
        return Err(DataError::TooLarge {
            path: path.into(),
            limit: MAX_DECOMPRESSED,
        });
    }
    Ok(out)
}

/// The total length an unsigned-byte IDX header promises (header included), if `header` is
/// a complete one.
fn promised_len(header: &[u8]) -> Option<u64> {
    let (magic, dims) = header.split_first_chunk::<4>()?;
    if magic[..3] != [0, 0, UNSIGNED_BYTE] || dims.len() != 4 * magic[3] as usize {
        return None;
    }
    let body = dims
        .chunks(4)
        .map(|d| u32::from_be_bytes(d.try_into().unwrap()) as u64)
        .fold(1u64, u64::saturating_mul);
    Some(body.saturating_add(header.len() as u64))
}

fn header(bytes: &[u8], ndims: usize, what: &str) -> Result<Vec<usize>, DataError> {
    let len = 4 + 4 * ndims;
    let expected_magic = [0, 0, UNSIGNED_BYTE, ndims as u8];
    if bytes.len() >= 4 && bytes[..4] != expected_magic {
        return Err(DataError::malformed(
            what,
            format!(
                "wrong magic {:02x?}, expected {:02x?} (an IDX file of {ndims}-D unsigned bytes)",
                &bytes[..4],
                expected_magic
            ),
        ));
    }
    if bytes.len() < len {
        return Err(DataError::malformed(
            what,
            format!("truncated header ({} bytes, need {len})", bytes.len()),
        ));
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
        return Err(DataError::malformed(
            what,
            format!("{problem}: the header promises {count} bytes of data, the file has {have}"),
        ));
    }
    Ok(&bytes[offset..])
}

/// Parses an image file: `[N, 28, 28]` unsigned bytes. Returns the pixels, `N · 784` of them.
pub fn parse_images(bytes: &[u8], what: &str) -> Result<Vec<u8>, DataError> {
    let dims = header(bytes, 3, what)?;
    if dims[1] != SIDE || dims[2] != SIDE {
        return Err(DataError::malformed(
            what,
            format!("images are {}×{}, expected {SIDE}×{SIDE}", dims[1], dims[2]),
        ));
    }
    let count = dims[0].saturating_mul(SIDE * SIDE);
    Ok(body(bytes, 16, count, what)?.to_vec())
}

/// Parses a label file: `[N]` unsigned bytes in 0..=9.
pub fn parse_labels(bytes: &[u8], what: &str) -> Result<Vec<u8>, DataError> {
    let dims = header(bytes, 1, what)?;
    let labels = body(bytes, 8, dims[0], what)?;
    if let Some(position) = labels.iter().position(|l| *l > 9) {
        return Err(DataError::malformed(
            what,
            format!(
                "label {} at index {position} is outside 0..=9",
                labels[position]
            ),
        ));
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
        let error = parse_images(&bytes, "images").unwrap_err().to_string();
        assert!(error.contains("truncated"), "{error}");
        let error = parse_labels(&[0, 0, 8], "labels").unwrap_err().to_string();
        assert!(error.contains("truncated header"), "{error}");
    }

    #[test]
    fn wrong_magic_is_rejected() {
        let bytes = encode(&[1], &[3]);
        let error = parse_images(&bytes, "images").unwrap_err().to_string();
        assert!(error.contains("wrong magic"), "{error}");
    }

    #[test]
    fn wrong_counts_are_rejected() {
        let error = parse_labels(&encode(&[5], &[1, 2, 3]), "labels")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("promises 5 bytes") && error.contains("has 3"),
            "{error}"
        );
        let error = parse_labels(&encode(&[1], &[1, 2]), "labels")
            .unwrap_err()
            .to_string();
        assert!(error.contains("too long"), "{error}");
        let error = parse_images(&encode(&[1, 27, 28], &[0; 27 * 28]), "images")
            .unwrap_err()
            .to_string();
        assert!(error.contains("27×28"), "{error}");
    }

    #[test]
    fn labels_outside_the_ten_classes_are_rejected() {
        let error = parse_labels(&encode(&[3], &[1, 10, 2]), "labels")
            .unwrap_err()
            .to_string();
        assert!(error.contains("label 10 at index 1"), "{error}");
    }
}
