//! Choosing the device at run time: `--backend flex|ndarray|wgpu|cuda`.
use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

/// A backend the user can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// Burn's fast CPU backend (default).
    Flex,
    /// The ndarray CPU backend (slow; for comparison).
    Ndarray,
    /// GPU through wgpu (Vulkan, Metal, DX12; lavapipe as a software Vulkan).
    Wgpu,
    /// NVIDIA GPUs through CUDA (cargo feature `cuda`).
    Cuda,
}

impl Backend {
    /// Every backend, compiled in or not.
    pub const ALL: [Backend; 4] = [
        Backend::Flex,
        Backend::Ndarray,
        Backend::Wgpu,
        Backend::Cuda,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Flex => "flex",
            Self::Ndarray => "ndarray",
            Self::Wgpu => "wgpu",
            Self::Cuda => "cuda",
        }
    }

    /// Whether this binary was built with the backend.
    pub fn is_compiled(self) -> bool {
        match self {
            Self::Flex => cfg!(feature = "flex"),
            Self::Ndarray => cfg!(feature = "ndarray"),
            Self::Wgpu => cfg!(feature = "wgpu"),
            Self::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// The backends this binary can use.
    pub fn available() -> Vec<Backend> {
        Self::ALL.into_iter().filter(|b| b.is_compiled()).collect()
    }

    /// The device (without autodiff).
    pub fn device(self) -> Device {
        match self {
            #[cfg(feature = "flex")]
            Self::Flex => Device::flex(),
            // Deprecated upstream in favour of flex, but users compare against it.
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            Self::Ndarray => Device::ndarray(),
            #[cfg(feature = "wgpu")]
            Self::Wgpu => Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
            #[cfg(feature = "cuda")]
            Self::Cuda => Device::cuda(0usize),
            #[allow(unreachable_patterns)]
            other => unreachable!("{other} is not compiled in; FromStr refuses it"),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = ParseBackendError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let available = Self::available().iter().map(|b| b.name()).collect();
        let backend = Self::ALL
            .into_iter()
            .find(|b| b.name() == name.trim().to_ascii_lowercase())
            .ok_or_else(|| ParseBackendError::Unknown {
                name: name.into(),
                available,
            })?;
        if !backend.is_compiled() {
            return Err(ParseBackendError::NotCompiled {
                name: backend.name(),
                available: Self::available().iter().map(|b| b.name()).collect(),
            });
        }
        Ok(backend)
    }
}

/// A backend name that is unknown, or not compiled into this binary.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseBackendError {
    /// Not a backend's name.
    #[error("unknown backend `{name}`; available: {}", available.join(", "))]
    Unknown {
        /// The name given.
        name: String,
        /// The backends compiled in.
        available: Vec<&'static str>,
    },
    /// A backend whose Cargo feature was off when this binary was built.
    #[error(
        "backend `{name}` is not compiled into this binary (rebuild with `--features {name}`); \
         available: {}",
        available.join(", ")
    )]
    NotCompiled {
        /// The backend.
        name: &'static str,
        /// The backends compiled in.
        available: Vec<&'static str>,
    },
}

/// Keeps freed tensor buffers for reuse; see [`activations::keep_freed_memory`], where it lives
/// so that users of the activations alone have it too.
pub use activations::keep_freed_memory;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_backend_lists_the_available_ones() {
        let error = "tpu".parse::<Backend>().unwrap_err().to_string();
        assert!(
            error.contains("unknown backend `tpu`") && error.contains("flex"),
            "{error}"
        );
        assert_eq!("flex".parse::<Backend>().unwrap(), Backend::Flex);
        if !cfg!(feature = "cuda") {
            let error = "cuda".parse::<Backend>().unwrap_err().to_string();
            assert!(error.contains("--features cuda"), "{error}");
        }
    }
}
