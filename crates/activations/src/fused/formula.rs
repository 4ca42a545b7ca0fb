//! The scalar formula of an element-wise activation: written once, in the activation's own file
//! (with `formula!`), it is what the SIMD kernels inline into their loops and what
//! [`ActivationKind::derivative`](crate::ActivationKind::derivative) evaluates for plots.

/// One activation's forward and backward formulas on one `f32`, with selects instead of
/// branches so that LLVM vectorises them. Each implementation is its own type so that the
/// kernels are compiled for one formula at a time (a runtime `match` inside the loop would keep
/// LLVM from vectorising it).
pub trait Formula: Copy + Send + Sync {
    /// `f(x)`.
    fn value(self, x: f32) -> f32;

    /// `grad · f'(x)`, from `saved` = the output when [`saves_output`](Self::saves_output),
    /// else the input.
    fn backward(self, saved: f32, grad: f32) -> f32;

    /// Whether [`backward`](Self::backward) works from the output. The forward can then
    /// overwrite its input, and the autodiff graph keeps one tensor instead of two.
    fn saves_output(self) -> bool;

    /// `f'(x)` from the input, through [`backward`](Self::backward).
    #[inline(always)]
    fn derivative(self, x: f32) -> f32 {
        let saved = if self.saves_output() {
            self.value(x)
        } else {
            x
        };
        self.backward(saved, 1.0)
    }
}

/// The [`Formula`] of activations that are not element-wise (softmax, APReLU): it has no value.
#[derive(Clone, Copy, Debug)]
pub enum NotElementwise {}

impl Formula for NotElementwise {
    fn value(self, _: f32) -> f32 {
        match self {}
    }
    fn backward(self, _: f32, _: f32) -> f32 {
        match self {}
    }
    fn saves_output(self) -> bool {
        match self {}
    }
}

/// Declares a [`Formula`]: a `Copy` struct with `f32` parameters, its value, its backward
/// (`grad · f'`), whether that backward reads the output (`saves_output`, default `false`) and,
/// only where the backward cannot serve for every parameter, `derivative` from the input.
///
/// ```ignore
/// formula!(
///     /// `x > 0 ? x : negative_slope · x`.
///     LeakyReluFormula { negative_slope },
///     value: |s, x| if x > 0.0 { x } else { x * s.negative_slope },
///     backward: |s, saved, grad| if saved > 0.0 { grad } else { grad * s.negative_slope },
///     saves_output: |s| s.negative_slope > 0.0,
/// );
/// ```
macro_rules! formula {
    (
        $(#[$meta:meta])*
        $name:ident { $($field:ident),* },
        value: |$s:ident, $x:ident| $value:expr,
        backward: |$s2:ident, $saved:ident, $grad:ident| $backward:expr
        $(, saves_output: |$s3:ident| $saves:expr)?
        $(, derivative: |$s4:ident, $dx:ident| $derivative:expr)?
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

        impl $crate::fused::Formula for $name {
            #[inline(always)]
            #[allow(unused_variables)]
            fn value(self, $x: f32) -> f32 {
                let $s = self;
                $value
            }

            #[inline(always)]
            #[allow(unused_variables)]
            fn backward(self, $saved: f32, $grad: f32) -> f32 {
                let $s2 = self;
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
    };
}

pub(crate) use formula;
