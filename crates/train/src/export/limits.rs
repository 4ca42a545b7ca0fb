//! The limits on a safetensors file from a stranger, each refused by name
//! ([`ExportError::Limit`]) before the bytes reach the `safetensors` parser or burn-store.
use std::collections::HashMap;
use std::path::Path;

use super::ExportError;

/// The largest safetensors file read (1 GiB, 268 million f32 weights): the reference CNN's
/// weights are 1.7 MB, the shipped ResNet's under 10 MB.
pub const MAX_SAFETENSORS_BYTES: u64 = 1 << 30;
/// The largest safetensors header (1 MiB; the safetensors crate alone allows 100 MB): ours
/// are a few kilobytes, the config in the metadata included.
pub const MAX_SAFETENSORS_HEADER_BYTES: u64 = 1 << 20;
/// The most elements one tensor may declare: as many f32 as fit in [`MAX_SAFETENSORS_BYTES`]
/// (shapes are checked before the offsets, so a shape whose product overflows is refused by
/// this name too).
pub const MAX_TENSOR_ELEMENTS: u64 = MAX_SAFETENSORS_BYTES / 4;

/// The file's bytes, refused over [`MAX_SAFETENSORS_BYTES`] before it is read.
pub(super) fn read(path: &Path) -> Result<Vec<u8>, ExportError> {
    crate::bounded::read_at_most(path, MAX_SAFETENSORS_BYTES)
        .map_err(|source| ExportError::Read {
            path: path.into(),
            source,
        })?
        .ok_or_else(|| ExportError::Limit {
            path: path.into(),
            what: format!("the file has more than {MAX_SAFETENSORS_BYTES} bytes"),
            limit: "MAX_SAFETENSORS_BYTES",
        })
}

/// The limits above, on the header alone: its length from the first 8 bytes, then each
/// tensor's declared shape.
pub(super) fn check_limits(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    let limit = |what: String, limit: &'static str| ExportError::Limit {
        path: path.into(),
        what,
        limit,
    };
    let Some(length) = bytes.get(..8) else {
        return Ok(()); // too short to be safetensors: the parser says so
    };
    let length = u64::from_le_bytes(length.try_into().expect("8 bytes"));
    // A length past the end of the file is no header at all (a text file, say): the parser
    // says "not a valid safetensors file", which is the truer message.
    if length > MAX_SAFETENSORS_HEADER_BYTES && length <= bytes.len() as u64 - 8 {
        return Err(limit(
            format!("its header claims {length} bytes"),
            "MAX_SAFETENSORS_HEADER_BYTES",
        ));
    }
    let Some(header) = usize::try_from(length)
        .ok()
        .and_then(|length| bytes.get(8..8usize.checked_add(length)?))
    else {
        return Ok(()); // shorter than its header: the parser says so
    };
    #[derive(serde::Deserialize)]
    struct Entry {
        shape: Vec<u64>,
    }
    let Ok(entries) = serde_json::from_slice::<HashMap<String, serde_json::Value>>(header) else {
        return Ok(()); // not a JSON object: the parser says so
    };
    for (name, entry) in entries {
        let Ok(Entry { shape }) = serde_json::from_value::<Entry>(entry) else {
            continue; // __metadata__, or not a tensor entry: the parser judges it
        };
        let elements = shape
            .iter()
            .try_fold(1u64, |product, &side| product.checked_mul(side));
        if elements.is_none_or(|n| n > MAX_TENSOR_ELEMENTS) {
            return Err(limit(
                format!("tensor {name} declares shape {shape:?}"),
                "MAX_TENSOR_ELEMENTS",
            ));
        }
    }
    Ok(())
}
