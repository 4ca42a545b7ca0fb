//! CSV files of records (`metrics.csv`, `diagnostics.csv`, `results.csv`), written and read with
//! the `csv` crate through the records' serde derives: the header is the field names, `None` is
//! an empty cell, and a reader names the file and line of a cell it cannot parse.
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The CSV text of `rows`, header first.
pub fn to_csv<T: Serialize>(rows: &[T]) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        writer
            .serialize(row)
            .expect("records of numbers and strings serialise");
    }
    writer.into_inner().expect("writing to memory cannot fail")
}

/// The records of a CSV file written by [`to_csv`].
pub fn read_csv<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, String> {
    let mut reader =
        csv::Reader::from_path(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    reader
        .deserialize()
        .map(|row| row.map_err(|e| format!("{} is damaged: {e}", path.display())))
        .collect()
}
