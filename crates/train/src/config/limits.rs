//! The limits on a config from a stranger, checked before any value is used
//! ([`ConfigError::Limit`](super::ConfigError::Limit)).

/// The largest config text read (1 MiB): the shipped configs are 1-3 KiB.
pub const MAX_CONFIG_BYTES: usize = 1 << 20;
/// The deepest nesting of tables and arrays in a config. The deepest a config needs is 3
/// (`[compare]` → `activations = [...]` → `{ kind = ... }`); the top-level table counts as 1.
pub const MAX_CONFIG_NESTING: usize = 8;

/// How deep tables and arrays nest in `value` (a plain value: 0, a table of plain values: 1).
pub(super) fn nesting(value: &toml::Value) -> usize {
    match value {
        toml::Value::Table(table) => 1 + table.values().map(nesting).max().unwrap_or(0),
        toml::Value::Array(items) => 1 + items.iter().map(nesting).max().unwrap_or(0),
        _ => 0,
    }
}
