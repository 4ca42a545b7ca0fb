//! [`ActivationConfig`] from text: a bare name (`"relu"`, or an alias such as `"swish"`) or a
//! table tagged by `kind`, with errors that list the valid names and fields.
use std::fmt;
use std::str::FromStr;

use serde::de::{self, MapAccess, Visitor, value::MapAccessDeserializer};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ActivationConfig;

impl fmt::Display for ActivationConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An activation name that is not in the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseActivationError {
    /// What was asked for.
    pub name: String,
}

impl fmt::Display for ParseActivationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown activation `{}`; valid names: {}",
            self.name,
            ActivationConfig::names().join(", ")
        )
    }
}

impl std::error::Error for ParseActivationError {}

impl FromStr for ActivationConfig {
    type Err = ParseActivationError;

    /// A name from [`ActivationConfig::names`] (or an alias such as `"swish"`), with default
    /// parameters.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let wanted = Self::canonical_name(name.trim());
        Self::catalog()
            .into_iter()
            .find(|config| Some(config.name()) == wanted)
            .ok_or_else(|| ParseActivationError { name: name.into() })
    }
}

impl Serialize for ActivationConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ActivationConfig::serialize(self, serializer)
    }
}

impl<'de> Deserialize<'de> for ActivationConfig {
    /// A bare name (`"relu"`) or a table tagged by `kind`.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameOrTable;

        impl<'de> Visitor<'de> for NameOrTable {
            type Value = ActivationConfig;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "an activation name such as \"relu\", or a table such as \
                     { kind = \"leaky_relu\", negative_slope = 0.1 }",
                )
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
                name.parse().map_err(E::custom)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                // Buffered so that parameters given to a kind without any can be refused:
                // serde's internally tagged unit variants silently ignore extra fields.
                let mut table = serde_json::Map::deserialize(MapAccessDeserializer::new(map))?;
                let alias = table.get("kind").and_then(|kind| kind.as_str());
                if let Some(kind) = alias.and_then(ActivationConfig::canonical_name) {
                    table.insert("kind".into(), kind.into());
                }
                let config =
                    ActivationConfig::deserialize(serde_json::Value::Object(table.clone()))
                        .map_err(de::Error::custom)?;
                let parameters = serde_json::to_value(&config).map_err(de::Error::custom)?;
                if let Some(unknown) = table
                    .keys()
                    .find(|key| parameters.get(key.as_str()).is_none())
                {
                    return Err(de::Error::custom(format!(
                        "unknown field `{unknown}`: `{}` takes {}",
                        config.name(),
                        match parameters.as_object().map(|o| o.len()).unwrap_or(0) {
                            0 | 1 => "no parameters".to_string(),
                            _ => format!(
                                "only {}",
                                parameters
                                    .as_object()
                                    .unwrap()
                                    .keys()
                                    .filter(|k| k.as_str() != "kind")
                                    .map(|k| format!("`{k}`"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        }
                    )));
                }
                config.validate().map_err(de::Error::custom)?;
                Ok(config)
            }
        }

        deserializer.deserialize_any(NameOrTable)
    }
}
