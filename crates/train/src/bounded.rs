//! Reading a file from a stranger whole, up to a named limit: its size is checked first, and
//! the read stops one byte past the limit whatever the file is (a pipe, `/dev/zero`), so a file
//! over the limit costs at most `limit + 1` bytes of memory.
use std::io::Read;
use std::path::Path;

/// The bytes of `path`, or `None` when it holds more than `limit` bytes.
pub(crate) fn read_at_most(path: &Path, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    let file = std::fs::File::open(path)?;
    if file
        .metadata()
        .is_ok_and(|m| m.is_file() && m.len() > limit)
    {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
}
