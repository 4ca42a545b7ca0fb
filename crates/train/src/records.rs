//! CSV files of records (`metrics.csv`, `diagnostics.csv`, `results.csv`), written and read with
//! the `csv` crate through the records' serde derives: the header is the field names, `None` is
//! an empty cell, and a reader names the file and line of a cell it cannot parse.
use std::path::{Path, PathBuf};

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

/// A CSV file of records that cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CsvError {
    /// The file could not be opened or read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A row that does not parse (the source names the line and field).
    #[error("{} is damaged", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The CSV reader's error.
        source: csv::Error,
    },
}

/// The records of a CSV file written by [`to_csv`].
pub fn read_csv<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, CsvError> {
    let bytes = std::fs::read(path).map_err(|source| CsvError::Io {
        path: path.into(),
        source,
    })?;
    parse_csv(&bytes, path)
}

/// The records in CSV `bytes` written by [`to_csv`]; `path` names them in errors.
pub fn parse_csv<T: DeserializeOwned>(bytes: &[u8], path: &Path) -> Result<Vec<T>, CsvError> {
    csv::Reader::from_reader(bytes)
        .deserialize()
        .map(|row| {
            row.map_err(|source| CsvError::Parse {
                path: path.into(),
                source,
            })
        })
        .collect()
}
