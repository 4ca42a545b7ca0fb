//! Naming the key of a negative count or size. `[model]` is an internally tagged enum
//! (`kind = "resnet"`), which serde reads through a buffer that forgets the path, so a
//! negative `stem` is reported at `[model]` as "invalid value: integer `-1`, expected usize".
//! The raw table still has the path: this finds it.

/// The dotted key (`model.stages[1]`) of the negative integer a serde error of the form
/// "invalid value: integer `-32`, expected u…" complains about, found in `table` (the parsed
/// document); `None` when
/// the error is another one or the value is not there.
pub(super) fn negative_count_key(table: &toml::Value, error: &str) -> Option<(String, i64)> {
    let start = error.find("invalid value: integer `")? + "invalid value: integer `".len();
    let end = start + error[start..].find('`')?;
    let value: i64 = error[start..end].parse().ok()?;
    let expects_unsigned = error[end..].starts_with("`, expected u");
    if value >= 0 || !expects_unsigned {
        return None;
    }
    find(table, value, String::new()).map(|key| (key, value))
}

/// The first key under `value` (depth first, in document order) that holds `target`.
fn find(value: &toml::Value, target: i64, path: String) -> Option<String> {
    match value {
        toml::Value::Integer(found) if *found == target => Some(path),
        toml::Value::Table(table) => table.iter().find_map(|(key, value)| {
            let path = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            find(value, target, path)
        }),
        toml::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(index, item)| find(item, target, format!("{path}[{index}]"))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_negative_value_in_the_error_is_found_by_its_key() {
        let text = "[train]\nseed = 1\n[model]\nkind = \"resnet\"\nstages = [16, -32]";
        let table = toml::Value::Table(toml::from_str(text).unwrap());
        let error = "TOML parse error ... invalid value: integer `-32`, expected usize";
        assert_eq!(
            negative_count_key(&table, error),
            Some(("model.stages[1]".into(), -32))
        );
        assert_eq!(negative_count_key(&table, "missing field `kind`"), None);
        let signed = "invalid value: integer `-32`, expected i8";
        assert_eq!(negative_count_key(&table, signed), None);
    }
}
