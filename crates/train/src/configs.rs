//! The configs that ship with the crate, embedded in the library (and so in an installed
//! `fmnist`): `--config default` works from any directory, with or without a checkout. The
//! files live in `configs/` of this crate (the workspace's `configs/` links to it), so
//! `cargo package` carries them.
use std::borrow::Cow;
use std::path::Path;

use crate::config::ConfigError;

/// A config shipped with the crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShippedConfig {
    /// Its name: the file name without `.toml` (`default`, `prelu`, `compare_cnn`, …).
    pub name: &'static str,
    /// The file's text, comments included.
    pub text: &'static str,
}

macro_rules! shipped {
    ($($name:literal),* $(,)?) => {
        &[$(ShippedConfig {
            name: $name,
            text: include_str!(concat!("../configs/", $name, ".toml")),
        }),*]
    };
}

/// Every shipped config, by name. A test checks that it lists exactly the files in
/// `configs/`.
pub const SHIPPED: &[ShippedConfig] = shipped![
    "default",
    "prelu",
    "aprelu",
    "selu",
    "deep_sigmoid_mlp",
    "resnet",
    "compare",
    "compare_cnn",
    "compare_deep_mlp",
    "compare_resnet",
    "compare_learnable",
];

impl ShippedConfig {
    /// The shipped config called `name` (`prelu` or `prelu.toml`).
    pub fn find(name: &str) -> Option<&'static ShippedConfig> {
        let name = name.strip_suffix(".toml").unwrap_or(name);
        SHIPPED.iter().find(|config| config.name == name)
    }

    /// What it is for: the first sentence of its opening comment.
    pub fn description(&self) -> String {
        let mut text = String::new();
        for line in self.text.lines() {
            // The comment ends at the first line that is not prose: code, a blank, or an
            // indented command example (`#   fmnist train ...`).
            let Some(comment) = line.strip_prefix('#') else {
                break;
            };
            if comment.trim().is_empty() || comment.starts_with("   ") {
                break;
            }
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(comment.trim());
            if let Some(end) = text.find(". ") {
                text.truncate(end + 1);
                break;
            }
        }
        text
    }

    /// Whether it is a study for `fmnist compare` (it has a `[compare]` section) rather than
    /// one run for `fmnist train`.
    pub fn is_compare(&self) -> bool {
        self.text.lines().any(|line| line.trim() == "[compare]")
    }
}

/// The names of the shipped configs, comma-separated, for error messages.
pub fn shipped_names() -> String {
    SHIPPED
        .iter()
        .map(|config| config.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The text a `--config` argument stands for, and how errors should name it: the file at
/// `path` when there is one, else the shipped config of that name. A file wins, so an edited
/// copy called `default.toml` in the working directory is used as it is.
pub fn read(path: &Path) -> Result<(Cow<'static, str>, String), ConfigError> {
    let limit = crate::config::MAX_CONFIG_BYTES;
    match crate::bounded::read_at_most(path, limit as u64) {
        Ok(None) => Err(ConfigError::Limit {
            origin: path.display().to_string(),
            what: format!("more than {limit} bytes"),
            limit: format!("MAX_CONFIG_BYTES = {limit} bytes"),
        }),
        Ok(Some(bytes)) => {
            let text = String::from_utf8(bytes).map_err(|e| ConfigError::Read {
                path: path.into(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            })?;
            Ok((Cow::Owned(text), path.display().to_string()))
        }
        Err(source) if source.kind() == std::io::ErrorKind::NotFound => {
            let shipped = path
                .to_str()
                .filter(|name| !name.contains(['/', '\\']))
                .and_then(ShippedConfig::find);
            match shipped {
                Some(config) => Ok((
                    Cow::Borrowed(config.text),
                    format!("configs/{}.toml (shipped with fmnist)", config.name),
                )),
                None => Err(ConfigError::NotFound {
                    path: path.into(),
                    shipped: shipped_names(),
                }),
            }
        }
        Err(source) => Err(ConfigError::Read {
            path: path.into(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Adding a file to `configs/` without listing it here (or the other way) fails.
    #[test]
    fn the_list_is_the_directory() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let mut listed: Vec<String> = SHIPPED.iter().map(|c| format!("{}.toml", c.name)).collect();
        listed.sort();
        assert_eq!(files, listed);
        for config in SHIPPED {
            assert!(
                !config.description().is_empty(),
                "{} has no comment",
                config.name
            );
        }
    }

    #[test]
    fn names_resolve_and_files_win() {
        let dir = std::env::temp_dir().join(format!("fmnist-configs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("prelu.toml");
        std::fs::write(&file, "# mine\n").unwrap();
        let (text, origin) = read(&file).unwrap();
        assert_eq!(
            (text.as_ref(), origin.as_str()),
            ("# mine\n", &*file.display().to_string())
        );
        std::fs::remove_dir_all(&dir).unwrap();

        for name in ["prelu", "prelu.toml"] {
            let (text, origin) = read(Path::new(name)).unwrap();
            assert_eq!(text, ShippedConfig::find("prelu").unwrap().text);
            assert_eq!(origin, "configs/prelu.toml (shipped with fmnist)");
        }
        assert!(ShippedConfig::find("compare_cnn").unwrap().is_compare());
        assert!(!ShippedConfig::find("default").unwrap().is_compare());

        // A path that does not exist is not looked up by its file name.
        let error = read(Path::new("elsewhere/prelu.toml"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("elsewhere/prelu.toml"), "{error}");
        assert!(error.contains("default, prelu, aprelu"), "{error}");
    }
}
