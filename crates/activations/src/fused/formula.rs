//! The statement of an element-wise activation: its value and its backward, written once in the
//! activation's own file (with `formula!`) as generic functions of [`Real`], and lowered by every
//! backend: the Flex SIMD loops and the models crate's fused conv block run them on `f32`, the
//! Cube backends trace them into a GPU kernel, the autodiff step calls whichever the tensor's
//! backend has, and [`ActivationKind::derivative`](crate::kind::ActivationKind::derivative)
//! evaluates them for plots.

use super::real::Real;

/// The most parameters a formula has: PAU's 17 at degrees (8, 8) (nine numerator and eight
/// denominator coefficients). The kernels pass them as one array; the entries past a formula's
/// [`PARAMETERS`](Formula::PARAMETERS) are zeros the compilers fold away.
pub const MAX_PARAMETERS: usize = 17;

/// The most parameters the element-wise Cube kernel passes (as scalars; the channel-wise
/// kernels read any number from their parameter tensor): ELU's three and one spare. Every
/// fixed-parameter kind fits; a formula with more runs on Cube channel-wise only.
pub(crate) const SCALAR_PARAMETERS: usize = 4;

/// One activation's forward and backward formulas, generic over the numbers they compute with.
/// Each implementation is its own type, so that every kernel is compiled for one formula at a
/// time (a runtime `match` inside a loop would keep LLVM from vectorising it).
pub trait Formula: Copy + Send + Sync + std::fmt::Debug + 'static {
    /// The formula's name, for messages (`"SiluFormula"`).
    const NAME: &'static str;

    /// How many parameters it has (the first entries of [`parameters`](Self::parameters)).
    const PARAMETERS: usize;

    /// Whether the Cube backends may run it. Shader compilers assume finite math and fold
    /// away tests for infinities; a formula whose special values depend on such a test says
    /// `false` and keeps its composite path there (softsign's NaN gradient at ±inf).
    const CUBE: bool;

    /// The parameters in the order [`value`](Self::value) and [`backward`](Self::backward)
    /// receive them, padded with zeros.
    fn parameters(self) -> [f32; MAX_PARAMETERS];

    /// The formula with these parameters (the inverse of [`parameters`](Self::parameters)).
    fn from_parameters(parameters: [f32; MAX_PARAMETERS]) -> Self;

    /// `f(x)`.
    fn value<R: Real>(parameters: [R; MAX_PARAMETERS], x: R) -> R;

    /// `grad · f'(x)`, from `saved` = the output when [`saves_output`](Self::saves_output),
    /// else the input.
    fn backward<R: Real>(parameters: [R; MAX_PARAMETERS], saved: R, grad: R) -> R;

    /// Whether [`backward`](Self::backward) works from the output. The forward can then
    /// overwrite its input, and the autodiff graph keeps one tensor instead of two.
    fn saves_output(self) -> bool;

    /// `f(x)` on one `f32`.
    #[inline(always)]
    fn at(self, x: f32) -> f32 {
        Self::value(self.parameters(), x)
    }

    /// `grad · f'(x)` on one `f32`, from the saved input or output.
    #[inline(always)]
    fn backward_at(self, saved: f32, grad: f32) -> f32 {
        Self::backward(self.parameters(), saved, grad)
    }

    /// `f'(x)` from the input, through [`backward`](Self::backward).
    #[inline(always)]
    fn derivative(self, x: f32) -> f32 {
        let saved = if self.saves_output() { self.at(x) } else { x };
        self.backward_at(saved, 1.0)
    }
}

/// A formula whose parameters are learned: what each element adds to each parameter's
/// gradient. The channel-wise kernels ([`Channelwise`](super::op::Channelwise)) give every
/// channel (or every sample and channel) its own parameters and reduce these terms per
/// channel, in a fixed order.
pub trait LearnedFormula: Formula {
    /// `grad · ∂f(x)/∂pₖ` for each parameter `pₖ`, from the input `x`; `-0.0` in the entries
    /// past [`PARAMETERS`](Formula::PARAMETERS) (and wherever an element adds nothing: `-0.0`
    /// leaves every sum unchanged, so the kernels add it without a blend).
    fn parameter_backward<R: Real>(
        parameters: [R; MAX_PARAMETERS],
        x: R,
        grad: R,
    ) -> [R; MAX_PARAMETERS];
}

/// Declares a [`Formula`]: a `Copy` struct with `f32` parameters; its value and its backward
/// (`grad · f'`) as expressions over `R: Real` in which each parameter is a variable of type
/// `R`; whether that backward reads the output (`saves_output`, on the `f32` struct, default
/// `false`); `cube: false` where shader compilers cannot be trusted with it; only where the
/// backward cannot serve for every parameter, `derivative` from the input on `f32`; and, for a
/// learned formula ([`LearnedFormula`]), `parameter_backward`: an array of one term per
/// parameter, in the order of the fields, from the input.
///
/// ```ignore
/// formula!(
///     /// `x > 0 ? x : negative_slope · x`.
///     LeakyReluFormula { negative_slope },
///     value: |x| R::select(x.greater(0.0), x, x * negative_slope),
///     backward: |saved, grad| R::select(saved.greater(0.0), grad, grad * negative_slope),
///     saves_output: |s| s.negative_slope > 0.0,
///     parameter_backward: |x, grad| [R::select(x.greater(0.0), -0.0, x * grad)],
/// );
/// ```
macro_rules! formula {
    (
        $(#[$meta:meta])*
        $name:ident { $($field:ident),* },
        value: |$x:ident| $value:expr,
        backward: |$saved:ident, $grad:ident| $backward:expr
        $(, saves_output: |$s3:ident| $saves:expr)?
        $(, cube: $cube:expr)?
        $(, derivative: |$s4:ident, $dx:ident| $derivative:expr)?
        $(, parameter_backward: |$px:ident, $pgrad:ident| $terms:expr)?
        $(,)?
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub struct $name {
            $(
                #[allow(missing_docs)]
                pub $field: f32,
            )*
        }

        impl $crate::fused::formula::Formula for $name {
            const NAME: &'static str = stringify!($name);
            const PARAMETERS: usize = <[&str]>::len(&[$(stringify!($field)),*]);
            const CUBE: bool = $crate::fused::formula::formula!(@cube $($cube)?);

            #[inline(always)]
            fn parameters(self) -> [f32; $crate::fused::formula::MAX_PARAMETERS] {
                let mut parameters = [0.0; $crate::fused::formula::MAX_PARAMETERS];
                let values: &[f32] = &[$(self.$field),*];
                parameters[..values.len()].copy_from_slice(values);
                parameters
            }

            #[inline(always)]
            #[allow(unused_variables, unused_mut, unused_assignments)]
            fn from_parameters(parameters: [f32; $crate::fused::formula::MAX_PARAMETERS]) -> Self {
                let mut index = 0;
                $(
                    let $field = parameters[index];
                    index += 1;
                )*
                Self { $($field),* }
            }

            #[inline(always)]
            #[allow(unused_variables, unused_mut, unused_assignments)]
            fn value<R: $crate::fused::real::Real>(
                parameters: [R; $crate::fused::formula::MAX_PARAMETERS],
                $x: R,
            ) -> R {
                let mut index = 0;
                $(
                    let $field = parameters[index];
                    index += 1;
                )*
                $value
            }

            #[inline(always)]
            #[allow(unused_variables, unused_mut, unused_assignments)]
            fn backward<R: $crate::fused::real::Real>(
                parameters: [R; $crate::fused::formula::MAX_PARAMETERS],
                $saved: R,
                $grad: R,
            ) -> R {
                let mut index = 0;
                $(
                    let $field = parameters[index];
                    index += 1;
                )*
                $backward
            }

            #[inline(always)]
            #[allow(unused_variables)]
            fn saves_output(self) -> bool {
                $( let $s3 = self; return $saves; )?
                #[allow(unreachable_code)]
                false
            }

            $(
                #[inline(always)]
                fn derivative(self, $dx: f32) -> f32 {
                    let $s4 = self;
                    $derivative
                }
            )?
        }

        $crate::fused::formula::formula!(
            @learned $name { $($field),* } $(, |$px, $pgrad| $terms)?
        );
    };
    (@learned $name:ident { $($field:ident),* }) => {};
    (@learned $name:ident { $($field:ident),* }, |$px:ident, $pgrad:ident| $terms:expr) => {
        impl $crate::fused::formula::LearnedFormula for $name {
            #[inline(always)]
            #[allow(unused_variables, unused_mut, unused_assignments)]
            fn parameter_backward<R: $crate::fused::real::Real>(
                parameters: [R; $crate::fused::formula::MAX_PARAMETERS],
                $px: R,
                $pgrad: R,
            ) -> [R; $crate::fused::formula::MAX_PARAMETERS] {
                let mut index = 0;
                $(
                    let $field = parameters[index];
                    index += 1;
                )*
                let mut padded = [R::from(-0.0); $crate::fused::formula::MAX_PARAMETERS];
                let terms: [R; <Self as $crate::fused::formula::Formula>::PARAMETERS] = $terms;
                for (slot, term) in terms.into_iter().enumerate() {
                    padded[slot] = term;
                }
                padded
            }
        }
    };
    (@cube) => { true };
    (@cube $cube:expr) => { $cube };
}

pub(crate) use formula;
