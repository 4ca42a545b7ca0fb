//! Choosing the device at run time: `--backend flex|ndarray|wgpu|cuda`, and `--device N` for
//! one GPU among several.
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
    /// GPU through wgpu (Vulkan, Metal, DX12; lavapipe as a software Vulkan): wgpu's default
    /// adapter (`None`), or the N-th of [`Backend::devices`].
    Wgpu(Option<usize>),
    /// NVIDIA GPUs through CUDA (cargo feature `cuda`): the GPU of this index.
    Cuda(usize),
}

impl Backend {
    /// Every backend, compiled in or not.
    pub const ALL: [Backend; 4] = [
        Backend::Flex,
        Backend::Ndarray,
        Backend::Wgpu(None),
        Backend::Cuda(0),
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Flex => "flex",
            Self::Ndarray => "ndarray",
            Self::Wgpu(_) => "wgpu",
            Self::Cuda(_) => "cuda",
        }
    }

    /// Whether this binary was built with the backend.
    pub fn is_compiled(self) -> bool {
        match self {
            Self::Flex => cfg!(feature = "flex"),
            Self::Ndarray => cfg!(feature = "ndarray"),
            Self::Wgpu(_) => cfg!(feature = "wgpu"),
            Self::Cuda(_) => cfg!(feature = "cuda"),
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
            Self::Wgpu(None) => Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
            #[cfg(feature = "cuda")]
            Self::Cuda(index) => Device::cuda(index),
            Self::Wgpu(Some(index)) => self
                .devices()
                .into_iter()
                .nth(index)
                .expect("on_device checked the index"),
            #[allow(unreachable_patterns)]
            other => unreachable!("{other} is not compiled in; FromStr refuses it"),
        }
    }

    /// The devices of this backend on this machine, in Burn's order (`Device::enumerate`):
    /// `--device N` picks the N-th. The CPU backends have one. The GPU lists are asked for
    /// once per process (enumerating adapters is not free, and [`device`](Self::device) of a
    /// `--device N` backend is called for every evaluation).
    pub fn devices(self) -> Vec<Device> {
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        fn once(
            cell: &'static std::sync::OnceLock<Vec<Device>>,
            kind: burn::tensor::DeviceType,
        ) -> Vec<Device> {
            cell.get_or_init(|| Device::enumerate(kind).into_vec())
                .clone()
        }
        match self {
            #[cfg(feature = "wgpu")]
            Self::Wgpu(_) => {
                static WGPU: std::sync::OnceLock<Vec<Device>> = std::sync::OnceLock::new();
                once(&WGPU, burn::tensor::DeviceType::Wgpu)
            }
            #[cfg(feature = "cuda")]
            Self::Cuda(_) => {
                static CUDA: std::sync::OnceLock<Vec<Device>> = std::sync::OnceLock::new();
                once(&CUDA, burn::tensor::DeviceType::Cuda)
            }
            Self::Flex | Self::Ndarray => vec![self.device()],
            #[allow(unreachable_patterns)]
            _ => Vec::new(),
        }
    }

    /// This backend on its device `index` (`--device N`), when this machine has it.
    pub fn on_device(self, index: usize) -> Result<Backend, DeviceError> {
        let devices = self.devices();
        if index >= devices.len() {
            return Err(DeviceError {
                backend: self.name(),
                index,
                found: devices
                    .iter()
                    .enumerate()
                    .map(|(i, device)| format!("{i}: {device:?}"))
                    .collect(),
            });
        }
        Ok(match self {
            Self::Wgpu(_) => Self::Wgpu(Some(index)),
            Self::Cuda(_) => Self::Cuda(index),
            cpu => cpu,
        })
    }
}

/// `--device N` names a device this machine does not have.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "--device {index}: {backend} has {} device(s) on this machine{}",
    found.len(),
    if found.is_empty() {
        String::new()
    } else {
        format!(" ({}); pick one of these indices", found.join(", "))
    }
)]
pub struct DeviceError {
    /// The backend.
    pub backend: &'static str,
    /// The index asked for.
    pub index: usize,
    /// The devices there are, `index: device`.
    pub found: Vec<String>,
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

/// Runs a command on the kernels' thread pool; see [`activations::in_thread_pool`].
pub use activations::in_thread_pool;

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
        assert_eq!(Backend::Flex.on_device(0), Ok(Backend::Flex));
        let error = Backend::Flex.on_device(7).unwrap_err().to_string();
        assert!(
            error.contains("--device 7: flex has 1 device(s)") && error.contains("0: "),
            "{error}"
        );
        if !cfg!(feature = "cuda") {
            let error = "cuda".parse::<Backend>().unwrap_err().to_string();
            assert!(error.contains("--features cuda"), "{error}");
        }
    }
}
