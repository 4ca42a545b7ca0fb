//! Reading user images for `fmnist predict`: any PNG, converted to 28×28 grayscale.
use std::path::Path;

use crate::data::DataError;
use crate::data::idx::SIDE;

/// The widest and tallest PNG [`load_png`] decodes: a phone photo (4032 × 3024) fits, and the
/// decoded pixels stay under 4096² × 4 channels = 64 MiB (the `png` crate's own default limit)
/// plus their f32 gray copy. A file whose header claims more is refused from the header alone,
/// so a small file cannot make the reader allocate gigabytes.
pub const MAX_IMAGE_SIDE: u32 = 4096;

/// Decodes a PNG (gray, RGB, with or without alpha, 8 or 16 bit) into 28×28 grayscale bytes,
/// resizing by area averaging. Fashion-MNIST shows light garments on black: pass `invert` for
/// dark objects on a light background. Images wider or taller than [`MAX_IMAGE_SIDE`] are
/// refused.
pub fn load_png(path: &Path, invert: bool) -> Result<Vec<u8>, DataError> {
    let file = std::fs::File::open(path).map_err(DataError::io("open", path))?;
    let png_error = |source| DataError::Png {
        path: path.into(),
        source,
    };
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(png_error)?;
    let (width, height) = (reader.info().width, reader.info().height);
    if width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE {
        return Err(DataError::ImageTooLarge {
            path: path.into(),
            width,
            height,
            max: MAX_IMAGE_SIDE,
        });
    }
    let mut buffer = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buffer).map_err(png_error)?;
    let (width, height) = (info.width as usize, info.height as usize);
    let channels = info.color_type.samples();
    let gray: Vec<f32> = buffer[..info.buffer_size()]
        .chunks(channels)
        .map(|px| match channels {
            1 | 2 => px[0] as f32,
            _ => 0.299 * px[0] as f32 + 0.587 * px[1] as f32 + 0.114 * px[2] as f32,
        })
        .collect();
    Ok(resize(&gray, width, height)
        .into_iter()
        .map(|v| {
            let v = v.round().clamp(0.0, 255.0) as u8;
            if invert { 255 - v } else { v }
        })
        .collect())
}

/// Area-average resize of a `width × height` image to 28×28.
fn resize(gray: &[f32], width: usize, height: usize) -> Vec<f32> {
    let mut out = vec![0.0; SIDE * SIDE];
    for (oy, row) in out.chunks_mut(SIDE).enumerate() {
        let y0 = oy * height / SIDE;
        let y1 = ((oy + 1) * height).div_ceil(SIDE).max(y0 + 1).min(height);
        for (ox, value) in row.iter_mut().enumerate() {
            let x0 = ox * width / SIDE;
            let x1 = ((ox + 1) * width).div_ceil(SIDE).max(x0 + 1).min(width);
            let mut sum = 0.0;
            for y in y0..y1 {
                sum += gray[y * width + x0..y * width + x1].iter().sum::<f32>();
            }
            *value = sum / ((y1 - y0) * (x1 - x0)) as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_png(path: &Path, width: u32, height: u32, color: png::ColorType, data: &[u8]) {
        let file = std::fs::File::create(path).unwrap();
        let mut encoder = png::Encoder::new(file, width, height);
        encoder.set_color(color);
        encoder.set_depth(png::BitDepth::Eight);
        encoder
            .write_header()
            .unwrap()
            .write_image_data(data)
            .unwrap();
    }

    /// The side limit at its edge, and a header that claims 100,000 × 100,000 pixels (a
    /// 1 × 1 image with its IHDR rewritten, CRC included), refused from the header.
    #[test]
    fn images_beyond_the_side_limit_are_refused_by_their_header() {
        let dir = tempfile::tempdir().unwrap();
        let edge = dir.path().join("edge.png");
        let side = MAX_IMAGE_SIDE as usize;
        write_png(
            &edge,
            MAX_IMAGE_SIDE,
            1,
            png::ColorType::Grayscale,
            &vec![7; side],
        );
        assert_eq!(load_png(&edge, false).unwrap().len(), 784);
        let over = dir.path().join("over.png");
        write_png(
            &over,
            1,
            MAX_IMAGE_SIDE + 1,
            png::ColorType::Grayscale,
            &vec![7; side + 1],
        );
        let error = load_png(&over, false).unwrap_err().to_string();
        assert!(
            error.contains("1 × 4097 pixels") && error.contains("4096 × 4096"),
            "{error}"
        );

        let tiny = dir.path().join("tiny.png");
        write_png(&tiny, 1, 1, png::ColorType::Grayscale, &[7]);
        let mut bytes = std::fs::read(&tiny).unwrap();
        // Signature (8), IHDR length (4), "IHDR" (4), width (4), height (4), ..., CRC after
        // the 13 data bytes, over the type and the data.
        bytes[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bytes[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.sum().to_be_bytes());
        let bomb = dir.path().join("bomb.png");
        std::fs::write(&bomb, bytes).unwrap();
        let error = load_png(&bomb, false).unwrap_err().to_string();
        assert!(error.contains("100000 × 100000 pixels"), "{error}");
    }

    #[test]
    fn grayscale_28_is_read_as_is_and_rgb_is_resized() {
        let dir = tempfile::tempdir().unwrap();
        let gray: Vec<u8> = (0..784).map(|i| (i % 256) as u8).collect();
        let path = dir.path().join("g.png");
        write_png(&path, 28, 28, png::ColorType::Grayscale, &gray);
        assert_eq!(load_png(&path, false).unwrap(), gray);
        assert_eq!(load_png(&path, true).unwrap()[1], 254);

        // 56×56 RGB, left half white: the 28×28 result is white on the left half.
        let rgb: Vec<u8> = (0..56 * 56)
            .flat_map(|i| if i % 56 < 28 { [255u8; 3] } else { [0u8; 3] })
            .collect();
        let path = dir.path().join("c.png");
        write_png(&path, 56, 56, png::ColorType::Rgb, &rgb);
        let image = load_png(&path, false).unwrap();
        assert_eq!(
            (image[0], image[13], image[14], image[27]),
            (255, 255, 0, 0)
        );
    }

    #[test]
    fn non_png_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.png");
        std::fs::write(&path, b"not a png").unwrap();
        assert!(
            load_png(&path, false)
                .unwrap_err()
                .to_string()
                .contains("not a readable PNG")
        );
    }
}
