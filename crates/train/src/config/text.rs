//! Reading a config's TOML text: the limits first, then the typed parse, with errors that name
//! the key where serde cannot.

use super::ConfigError;
use super::limits::{MAX_CONFIG_BYTES, MAX_CONFIG_NESTING, nesting};
use super::negative;

impl ConfigError {
    /// Parses TOML text, naming `origin` in the error. Text over [`MAX_CONFIG_BYTES`] or
    /// nested deeper than [`MAX_CONFIG_NESTING`] is refused before it is used.
    pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(
        text: &str,
        origin: impl Into<String>,
    ) -> Result<T, Self> {
        let origin = origin.into();
        if text.len() > MAX_CONFIG_BYTES {
            return Err(Self::Limit {
                origin,
                what: format!("{} bytes", text.len()),
                limit: format!("MAX_CONFIG_BYTES = {MAX_CONFIG_BYTES} bytes"),
            });
        }
        let toml_error = |source| Self::Toml {
            origin: origin.clone(),
            source,
        };
        // The parser bounds its own recursion; the tree it gives is then measured before any
        // of it is used. Parsed again as `T` for errors with line and column.
        let table = toml::Value::Table(toml::from_str(text).map_err(toml_error)?);
        let depth = nesting(&table);
        if depth > MAX_CONFIG_NESTING {
            return Err(Self::Limit {
                origin,
                what: format!("tables and arrays nested {depth} deep"),
                limit: format!("MAX_CONFIG_NESTING = {MAX_CONFIG_NESTING}"),
            });
        }
        toml::from_str(text).map_err(|source: toml::de::Error| {
            match negative::negative_count_key(&table, source.message()) {
                Some((key, value)) => Self::Invalid {
                    key,
                    reason: format!(
                        "is {value}: a count or size cannot be negative; write a whole number \
                         (at least 1 for a width, a number of blocks or a batch size)"
                    ),
                }
                .in_file(&origin),
                None => toml_error(source),
            }
        })
    }
}
