//! [`Pointwise`]: one element-wise [`Formula`] with its parameters, as a value the backends and
//! the fused layers of other crates can carry, and the table of its lowerings; [`Channelwise`]:
//! the same for a [`LearnedFormula`] whose parameters come per channel from a tensor.
//!
//! The table is built per formula type when [`Pointwise::new`] is called, from the generic
//! kernels (`kernels/pointwise.rs` for Flex, `cube/pointwise.rs` for the Cube backends): each entry is that kernel
//! compiled for this one formula. Nothing here names an activation; the registry's modules
//! hand their formulas in.

use super::formula::{Formula, LearnedFormula, MAX_PARAMETERS, SCALAR_PARAMETERS};
use super::kernels::channel::{self, ChannelLayout};
use super::kernels::pointwise as kernels;
use std::mem::MaybeUninit;

/// An element-wise activation with a fused kernel: a [`Formula`] and its parameters.
///
/// Built by the activations' modules ([`crate::kind::ActivationKind::pointwise`]) or from any
/// formula with [`Pointwise::new`].
#[derive(Clone, Copy)]
pub struct Pointwise {
    name: &'static str,
    parameters: [f32; MAX_PARAMETERS],
    saves_output: bool,
    cube: bool,
    lowering: &'static Lowering,
}

/// A formula's parameters, as its kernels receive them.
type Parameters = [f32; MAX_PARAMETERS];
/// An output buffer a kernel writes every element of.
type Output<'a> = &'a mut [MaybeUninit<f32>];

/// The kernels of one formula, each compiled for it.
pub(crate) struct Lowering {
    pub value: fn(Parameters, f32) -> f32,
    pub backward: fn(Parameters, f32, f32) -> f32,
    pub derivative: fn(Parameters, f32) -> f32,
    pub forward_in_place: fn(Parameters, &mut [f32]),
    pub forward_into: fn(Parameters, &[f32], Output),
    pub backward_into_grad: fn(Parameters, &[f32], &mut [f32]),
    pub backward_into_saved: fn(Parameters, &mut [f32], &[f32]),
    pub backward_new: fn(Parameters, &[f32], &[f32], Output),
    pub forward_on_thread: fn(Parameters, &[f32], &mut [f32]),
    pub forward_normalised_on_thread: fn(Parameters, &[f32], &mut [f32], [f32; 3]),
    pub backward_on_thread: fn(Parameters, &[f32], &mut [f32]),
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    pub cube: super::cube::pointwise::Launch,
}

/// The table of `F`, a constant per formula type.
struct Lowered<F>(std::marker::PhantomData<F>);

impl<F: Formula> Lowered<F> {
    const TABLE: &'static Lowering = &Lowering {
        value: F::value::<f32>,
        backward: F::backward::<f32>,
        derivative: |p, x| F::from_parameters(p).derivative(x),
        forward_in_place: |p, values| kernels::forward_in_place(F::from_parameters(p), values),
        forward_into: |p, input, output| {
            kernels::forward_into(F::from_parameters(p), input, output)
        },
        backward_into_grad: |p, saved, grad| {
            kernels::backward_into_grad(F::from_parameters(p), saved, grad)
        },
        backward_into_saved: |p, saved, grad| {
            kernels::backward_into_saved(F::from_parameters(p), saved, grad)
        },
        backward_new: |p, saved, grad, output| {
            kernels::backward_new(F::from_parameters(p), saved, grad, output)
        },
        forward_on_thread: |p, input, output| {
            kernels::forward_on_thread(F::from_parameters(p), input, output)
        },
        forward_normalised_on_thread: |p, input, output, affine| {
            kernels::forward_normalised_on_thread(F::from_parameters(p), input, output, affine)
        },
        backward_on_thread: |p, saved, grad| {
            kernels::backward_on_thread(F::from_parameters(p), saved, grad)
        },
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        cube: super::cube::pointwise::launch::<F>,
    };
}

impl Pointwise {
    /// The op of `formula` with its current parameters.
    pub fn new<F: Formula>(formula: F) -> Self {
        Self {
            name: F::NAME,
            parameters: formula.parameters(),
            saves_output: formula.saves_output(),
            // The element-wise Cube kernel takes its parameters as scalars.
            cube: F::CUBE && F::PARAMETERS <= SCALAR_PARAMETERS,
            lowering: Lowered::<F>::TABLE,
        }
    }

    /// `f(x)` for one element (the kernels inline the formula instead).
    pub fn value(self, x: f32) -> f32 {
        (self.lowering.value)(self.parameters, x)
    }

    /// `grad · f'(x)` for one element, from the saved input or output.
    pub fn backward(self, saved: f32, grad: f32) -> f32 {
        (self.lowering.backward)(self.parameters, saved, grad)
    }

    /// `f'(x)` from the input, with the formula's choice at kinks (plots, diagnostics).
    pub fn derivative(self, x: f32) -> f32 {
        (self.lowering.derivative)(self.parameters, x)
    }

    /// Whether the backward pass needs only the output. Then the forward can overwrite its
    /// input when nothing else holds it, and the graph keeps one tensor instead of two.
    pub fn saves_output(self) -> bool {
        self.saves_output
    }

    /// Whether the Cube backends run it ([`Formula::CUBE`]).
    pub fn runs_on_cube(self) -> bool {
        self.cube
    }

    /// The formula's name (`"SiluFormula"`).
    pub fn name(self) -> &'static str {
        self.name
    }

    /// The parameters the formula receives.
    pub(crate) fn parameters(self) -> [f32; MAX_PARAMETERS] {
        self.parameters
    }

    /// The formula's kernels.
    pub(crate) fn lowering(self) -> &'static Lowering {
        self.lowering
    }
}

impl<F: Formula> From<F> for Pointwise {
    fn from(formula: F) -> Self {
        Self::new(formula)
    }
}

impl PartialEq for Pointwise {
    fn eq(&self, other: &Self) -> bool {
        // Bitwise, so that an op equals itself even with a NaN parameter.
        self.name == other.name
            && self.parameters.map(f32::to_bits) == other.parameters.map(f32::to_bits)
    }
}

impl std::fmt::Debug for Pointwise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{:?}", self.name, self.parameters)
    }
}

/// A learned activation whose parameters vary along the channel axis: a [`LearnedFormula`]
/// with one row of [`Formula::PARAMETERS`] parameters per channel (PReLU's slope), per sample
/// and channel (APReLU's), or one row for the whole tensor. The parameters are a tensor, not
/// part of the value: the kernels read them per channel and return their gradient.
#[derive(Clone, Copy)]
pub struct Channelwise {
    name: &'static str,
    parameter_count: usize,
    cube: bool,
    lowering: &'static ChannelLowering,
}

/// A channel-wise backward on Flex: `(input, parameters, layout, grad in place) → the
/// parameters' gradient`.
type ChannelBackward = fn(&[f32], &[f32], ChannelLayout, &mut [f32]) -> Vec<f32>;

/// The kernels of one learned formula, each compiled for it.
pub(crate) struct ChannelLowering {
    pub pointwise: fn(Parameters) -> Pointwise,
    pub backward_with_parameter_sums: fn(Parameters, &[f32], &mut [f32]) -> Parameters,
    pub forward: fn(&[f32], &[f32], ChannelLayout, Output),
    pub backward: ChannelBackward,
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    pub cube_forward: super::cube::channel::Forward,
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    pub cube_backward: super::cube::channel::Backward,
}

/// The channel-wise table of `F`.
struct ChannelLowered<F>(std::marker::PhantomData<F>);

impl<F: LearnedFormula> ChannelLowered<F> {
    const TABLE: &'static ChannelLowering = &ChannelLowering {
        pointwise: |p| Pointwise::new(F::from_parameters(p)),
        backward_with_parameter_sums: channel::backward_with_parameter_sums::<F>,
        forward: channel::channel_forward::<F>,
        backward: channel::channel_backward::<F>,
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        cube_forward: super::cube::channel::forward::<F>,
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        cube_backward: super::cube::channel::backward::<F>,
    };
}

impl Channelwise {
    /// The channel-wise op of the formula `F`.
    pub fn of<F: LearnedFormula>() -> Self {
        assert!(
            (1..=MAX_PARAMETERS).contains(&F::PARAMETERS),
            "{}: a learned formula has 1 to {MAX_PARAMETERS} parameters",
            F::NAME
        );
        Self {
            name: F::NAME,
            parameter_count: F::PARAMETERS,
            cube: F::CUBE,
            lowering: ChannelLowered::<F>::TABLE,
        }
    }

    /// How many parameters one channel has (the second dim of the parameter tensor).
    pub fn parameter_count(self) -> usize {
        self.parameter_count
    }

    /// The element-wise op of one channel, with its parameters (`parameter_count` of them).
    ///
    /// # Panics
    /// When `parameters` has another length.
    pub fn at(self, parameters: &[f32]) -> Pointwise {
        (self.lowering.pointwise)(self.pad(parameters))
    }

    /// The backward of one channel's elements `inputs` with output gradients `grads`, in one
    /// pass: `grads` becomes the gradient of `inputs` (as the op of [`at(parameters)`](Self::at)
    /// computes it) and `sums` gains the gradient of the channel's `parameters`, each sum's
    /// terms added in a fixed order (16 f32 lanes per block of 1024 elements, the blocks in
    /// f64), the same in every run. For fused layers of other crates that visit a channel's
    /// elements themselves: the `models` crate's conv block sums over a plane's pooling winners.
    ///
    /// # Panics
    /// When `parameters` or `sums` has another length than `parameter_count`, or the slices
    /// differ in length.
    pub fn backward_adding_parameter_grad(
        self,
        parameters: &[f32],
        inputs: &[f32],
        grads: &mut [f32],
        sums: &mut [f32],
    ) {
        assert_eq!(sums.len(), self.parameter_count, "one sum per parameter");
        assert_eq!(inputs.len(), grads.len(), "one gradient per input");
        let backward = self.lowering.backward_with_parameter_sums;
        let terms = backward(self.pad(parameters), inputs, grads);
        for (sum, term) in sums.iter_mut().zip(terms) {
            *sum += term;
        }
    }

    fn pad(self, parameters: &[f32]) -> Parameters {
        assert_eq!(
            parameters.len(),
            self.parameter_count,
            "{} has {} parameters per channel",
            self.name,
            self.parameter_count
        );
        let mut padded = [0.0; MAX_PARAMETERS];
        padded[..parameters.len()].copy_from_slice(parameters);
        padded
    }

    /// Whether the Cube backends run it ([`Formula::CUBE`]).
    pub fn runs_on_cube(self) -> bool {
        self.cube
    }

    /// The formula's name (`"LeakyReluFormula"`).
    pub fn name(self) -> &'static str {
        self.name
    }

    /// The formula's kernels.
    pub(crate) fn lowering(self) -> &'static ChannelLowering {
        self.lowering
    }
}

impl PartialEq for Channelwise {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl std::fmt::Debug for Channelwise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Channelwise({})", self.name)
    }
}
