use crate::InvalidConfig;
use crate::fused::{self, Channelwise, Pointwise, Real, formula::formula};
use crate::kind::{ActivationKind, channelwise_derivative, host_values};
use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

mod fit;
#[cfg(test)]
mod tests;

pub use fit::PauInit;

/// Padé Activation Unit (Molina et al., "Padé Activation Units: End-to-end Learning of Flexible
/// Activation Functions in Deep Networks", ICLR 2020): a learned rational function.
///
/// ```text
/// f(x) = P(x) / Q(x),   P(x) = a₀ + a₁x + … + a_m·x^m
/// version A:  Q(x) = 1 + |b₁|·|x| + |b₂|·|x|² + … + |b_n|·|x|^n      (the paper's "safe" PAU)
/// version B:  Q(x) = 1 + |b₁x + b₂x² + … + b_n·x^n|
/// ```
///
/// `Q ≥ 1`, so there are no poles by construction. Degrees `(m, n)` from 1 to 8, default
/// `(5, 4)`; one set of coefficients for the layer (the paper, default) or one per channel
/// (dim 1 of `[N, C, ...]`). The coefficients start as a least-squares fit of a named function
/// ([`PauInit`], default leaky ReLU) on `[-3, 3]`, computed when the module is built, as the
/// authors' code fits its initial coefficients.
///
/// Computed in the order of operations of the authors' code (`ml-research/pau`, version A:
/// `P = x·a₁ + a₀ + Σ a_j·x^j`, `Q = |x|·|b₁| + 1 + Σ |b_k|·|x^k|`; `rational_activations`,
/// version B), with PyTorch autograd's gradients of it: `sign(0) = 0` in the derivatives of
/// `|·|`, and `P/Q²` formed as `(P/Q)/Q`, so values and gradients stay finite for `|x|` up to
/// 1e4 at every degree. The backward is deterministic (fixed-order sums), unlike the reference
/// CUDA kernel's atomic adds.
#[derive(Module, Debug)]
pub struct Pau {
    /// `a₀ … a_m`, shape `[rows, m + 1]` (`rows` = 1, or one per channel).
    pub numerator: Param<Tensor<2>>,
    /// `b₁ … b_n`, shape `[rows, n]`.
    pub denominator: Param<Tensor<2>>,
    /// Which safe denominator.
    #[module(skip)]
    pub version: PauVersion,
    /// The initial fit's coefficients padded to degree 8 (as [`parameters`](Self::parameters)
    /// lays out a row), for inspection; `None` for a module built from given coefficients. Not
    /// saved: a model rebuilt from its config refits them (deterministically).
    #[module(skip)]
    pub initial: Option<Vec<f32>>,
}

/// The denominator of [`Pau`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PauVersion {
    /// `1 + Σ |b_k|·|x|^k` (the default, as the paper's experiments).
    #[default]
    #[serde(rename = "a", alias = "A")]
    A,
    /// `1 + |Σ b_k·x^k|`.
    #[serde(rename = "b", alias = "B")]
    B,
}

/// The highest degree of either polynomial.
pub const MAX_DEGREE: usize = 8;

/// Configuration of [`Pau`] (`kind = "pau"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PauConfig {
    /// `[m, n]`: the degrees of the numerator and the denominator, each 1 to 8. Default `[5, 4]`.
    pub degrees: [usize; 2],
    /// The denominator: `"a"` (default, `1 + Σ|b_k||x|^k`) or `"b"` (`1 + |Σ b_k x^k|`).
    pub version: PauVersion,
    /// The function the coefficients start as (a least-squares fit on [-3, 3]): `"leaky_relu"`
    /// (default, slope 0.01), `"relu"`, `"gelu"`, `"silu"`, `"tanh"`, `"sigmoid"`, `"mish"` or
    /// `"identity"`.
    pub init: PauInit,
    /// One set of coefficients per channel (the slot's channel count) instead of one for the
    /// layer. Default false.
    pub per_channel: bool,
}

impl Default for PauConfig {
    fn default() -> Self {
        Self {
            degrees: [5, 4],
            version: PauVersion::A,
            init: PauInit::LeakyRelu,
            per_channel: false,
        }
    }
}

impl PauConfig {
    /// Checks both degrees are in 1..=8.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        for (degree, which) in self.degrees.iter().zip(["numerator", "denominator"]) {
            if !(1..=MAX_DEGREE).contains(degree) {
                return Err(InvalidConfig::new(
                    "pau.degrees",
                    format!(
                        "has {which} degree {degree}: each degree must be 1 to {MAX_DEGREE} \
                         (e.g. degrees = [5, 4], the paper's)"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Builds the module for a slot with `channels` channels: the fitted initial coefficients
    /// in every row.
    ///
    /// # Panics
    /// When the config is invalid (see [`validate`](Self::validate)) or `channels` is 0.
    pub fn init(&self, channels: usize, device: &Device) -> Pau {
        if let Err(error) = self.validate() {
            panic!("{error}");
        }
        assert!(channels > 0, "PAU needs at least one channel");
        let rows = if self.per_channel { channels } else { 1 };
        let [m, n] = self.degrees;
        let (numerator, denominator) = fit::initial_coefficients(self.init, m, n, self.version);
        let mut initial = numerator.clone();
        initial.resize(MAX_DEGREE + 1, 0.0);
        initial.extend(&denominator);
        initial.resize(2 * MAX_DEGREE + 1, 0.0);
        let repeat = |row: Vec<f32>, width: usize| {
            let data = TensorData::new(row.repeat(rows), [rows, width]);
            Param::from_tensor(Tensor::from_data(data, device))
        };
        Pau {
            numerator: repeat(numerator, m + 1),
            denominator: repeat(denominator, n),
            version: self.version,
            initial: Some(initial),
        }
    }
}

// The formulas: coefficients up to degree 8 (17 parameters); those past the module's degrees
// are zeros, which leave every value and gradient as the lower-degree formula gives them (for
// finite inputs). Kept as two formulas so that each kernel is compiled for one denominator.
formula!(
    /// PAU with version A's denominator, `1 + Σ |b_k|·|x|^k`.
    PauAFormula { a0, a1, a2, a3, a4, a5, a6, a7, a8, b1, b2, b3, b4, b5, b6, b7, b8 },
    value: |x| {
        let r = Rational::new([a0, a1, a2, a3, a4, a5, a6, a7, a8], x);
        r.numerator / r.denominator_a([b1, b2, b3, b4, b5, b6, b7, b8]).0
    },
    backward: |x, grad| {
        let r = Rational::new([a0, a1, a2, a3, a4, a5, a6, a7, a8], x);
        let (q, dq) = r.denominator_a([b1, b2, b3, b4, b5, b6, b7, b8]);
        r.input_grad([a0, a1, a2, a3, a4, a5, a6, a7, a8], q, dq, grad)
    },
    parameter_backward: |x, grad| {
        let r = Rational::new([a0, a1, a2, a3, a4, a5, a6, a7, a8], x);
        let b = [b1, b2, b3, b4, b5, b6, b7, b8];
        let (q, _) = r.denominator_a(b);
        // d|b_k|·|x^k| / db_k = sign(b_k)·|x^k|.
        r.parameter_grads(q, grad, |k| sign(b[k - 1]) * r.powers[k].abs())
    },
);

formula!(
    /// PAU with version B's denominator, `1 + |Σ b_k·x^k|`.
    PauBFormula { a0, a1, a2, a3, a4, a5, a6, a7, a8, b1, b2, b3, b4, b5, b6, b7, b8 },
    value: |x| {
        let r = Rational::new([a0, a1, a2, a3, a4, a5, a6, a7, a8], x);
        r.numerator / r.denominator_b([b1, b2, b3, b4, b5, b6, b7, b8]).0
    },
    backward: |x, grad| {
        let r = Rational::new([a0, a1, a2, a3, a4, a5, a6, a7, a8], x);
        let (q, dq, _) = r.denominator_b([b1, b2, b3, b4, b5, b6, b7, b8]);
        r.input_grad([a0, a1, a2, a3, a4, a5, a6, a7, a8], q, dq, grad)
    },
    parameter_backward: |x, grad| {
        let r = Rational::new([a0, a1, a2, a3, a4, a5, a6, a7, a8], x);
        let (q, _, sum_sign) = r.denominator_b([b1, b2, b3, b4, b5, b6, b7, b8]);
        // d|Σ b_k x^k| / db_k = sign(Σ b_k x^k)·x^k.
        r.parameter_grads(q, grad, |k| sum_sign * r.powers[k])
    },
);

/// Runs `$body` once per listed index, as straight-line code: loops inside a formula keep LLVM
/// from vectorising the kernel's loop over elements (it would see them as the innermost loops).
macro_rules! unrolled {
    ($index:ident in [$($value:literal),*] $body:block) => {
        $( { let $index: usize = $value; $body } )*
    };
}

/// `-1`, `0` or `1`: the derivative of `|v|` as PyTorch's autograd takes it (0 at 0).
#[inline(always)]
fn sign<R: Real>(v: R) -> R {
    R::select(v.greater(0.0), 1.0, R::select(v.less(0.0), -1.0, 0.0))
}

/// The numerator of a PAU at one input, with the powers of the input the rest needs.
struct Rational<R> {
    /// `x^0 … x^8`, each the previous times `x`.
    powers: [R; MAX_DEGREE + 1],
    /// `P(x) = x·a₁ + a₀ + a₂·x² + … + a₈·x⁸`, in that order (the authors' code).
    numerator: R,
}

impl<R: Real> Rational<R> {
    #[inline(always)]
    fn new(a: [R; MAX_DEGREE + 1], x: R) -> Self {
        let mut powers = [R::from(1.0); MAX_DEGREE + 1];
        powers[1] = x;
        unrolled!(j in [2, 3, 4, 5, 6, 7, 8] {
            powers[j] = powers[j - 1] * x;
        });
        let mut numerator = x * a[1] + a[0];
        unrolled!(j in [2, 3, 4, 5, 6, 7, 8] {
            numerator = numerator + a[j] * powers[j];
        });
        Self { powers, numerator }
    }

    /// Version A's `Q = |x|·|b₁| + 1 + Σ_{k≥2} |b_k|·|x^k|` and `dQ/dx`.
    #[inline(always)]
    fn denominator_a(&self, b: [R; MAX_DEGREE]) -> (R, R) {
        let x = self.powers[1];
        let mut q = x.abs() * b[0].abs() + 1.0;
        let mut slope = b[0].abs();
        unrolled!(k in [2, 3, 4, 5, 6, 7, 8] {
            q = q + b[k - 1].abs() * self.powers[k].abs();
            slope = slope + b[k - 1].abs() * self.powers[k - 1].abs() * (k as f32);
        });
        (q, slope * sign(x))
    }

    /// Version B's `Q = 1 + |S|`, `S = x·b₁ + Σ_{k≥2} b_k·x^k`, `dQ/dx` and `sign(S)`.
    #[inline(always)]
    fn denominator_b(&self, b: [R; MAX_DEGREE]) -> (R, R, R) {
        let x = self.powers[1];
        let mut sum = x * b[0];
        let mut slope = b[0];
        unrolled!(k in [2, 3, 4, 5, 6, 7, 8] {
            sum = sum + b[k - 1] * self.powers[k];
            slope = slope + b[k - 1] * self.powers[k - 1] * (k as f32);
        });
        let sum_sign = sign(sum);
        (sum.abs() + 1.0, slope * sum_sign, sum_sign)
    }

    /// `grad · f'(x) = grad·P'/Q − (grad·(P/Q)/Q)·Q'`.
    #[inline(always)]
    fn input_grad(&self, a: [R; MAX_DEGREE + 1], q: R, dq: R, grad: R) -> R {
        let mut dp = a[1];
        unrolled!(j in [2, 3, 4, 5, 6, 7, 8] {
            dp = dp + a[j] * self.powers[j - 1] * (j as f32);
        });
        grad / q * dp + self.denominator_grad(q, grad) * dq
    }

    /// The gradient reaching `Q`: `−grad·(P/Q)/Q`, PyTorch's division backward.
    #[inline(always)]
    fn denominator_grad(&self, q: R, grad: R) -> R {
        -(grad * (self.numerator / q / q))
    }

    /// `[grad·x^j/Q for a_j] ++ [denominator_grad · dQ/db_k for b_k]`.
    #[inline(always)]
    fn parameter_grads(&self, q: R, grad: R, dq_db: impl Fn(usize) -> R) -> [R; 17] {
        let numerator_grad = grad / q;
        let denominator_grad = self.denominator_grad(q, grad);
        let mut grads = [R::from(0.0); 17];
        unrolled!(j in [0, 1, 2, 3, 4, 5, 6, 7, 8] {
            grads[j] = numerator_grad * self.powers[j];
        });
        unrolled!(k in [1, 2, 3, 4, 5, 6, 7, 8] {
            grads[MAX_DEGREE + k] = denominator_grad * dq_db(k);
        });
        grads
    }
}

/// The names of the coefficients, for inspection.
const NUMERATOR_NAMES: [&str; MAX_DEGREE + 1] = ["a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8"];
const DENOMINATOR_NAMES: [&str; MAX_DEGREE] = ["b1", "b2", "b3", "b4", "b5", "b6", "b7", "b8"];

impl Pau {
    /// The degrees `(m, n)`.
    pub fn degrees(&self) -> (usize, usize) {
        (self.numerator.dims()[1] - 1, self.denominator.dims()[1])
    }

    /// How many rows of coefficients: 1, or one per channel.
    pub fn rows(&self) -> usize {
        self.numerator.dims()[0]
    }

    /// `[rows, 17]`: each row's coefficients padded to degree 8 with zeros, as the channel-wise
    /// kernels read them (the padding receives gradients nobody keeps).
    pub fn parameters(&self) -> Tensor<2> {
        let (m, n) = self.degrees();
        let rows = self.rows();
        let device = self.numerator.device();
        let mut parts = vec![self.numerator.val()];
        if m < MAX_DEGREE {
            parts.push(Tensor::zeros([rows, MAX_DEGREE - m], &device));
        }
        parts.push(self.denominator.val());
        if n < MAX_DEGREE {
            parts.push(Tensor::zeros([rows, MAX_DEGREE - n], &device));
        }
        Tensor::cat(parts, 1)
    }

    fn op(&self) -> Channelwise {
        match self.version {
            PauVersion::A => Channelwise::of::<PauAFormula>(),
            PauVersion::B => Channelwise::of::<PauBFormula>(),
        }
    }

    /// Applies the PAU; input `[N, C, ...]` (or any shape with one set of coefficients).
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        self.check_channels(&input);
        fused::channelwise(input, self.parameters(), self.op())
            .unwrap_or_else(|input| self.composite(input))
    }

    fn check_channels<const D: usize>(&self, input: &Tensor<D>) {
        let (rows, dims) = (self.rows(), input.dims());
        assert!(
            rows == 1 || (D >= 2 && dims[1] == rows),
            "PAU has coefficients for {rows} channels, but the input has shape {dims:?}: its \
             dim 1 must have {rows} channels"
        );
    }

    /// The same with Burn's built-in tensor ops: the path on backends without a fused kernel.
    fn composite<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let (m, n) = self.degrees();
        let mut shape = [1usize; D];
        if self.rows() > 1 {
            shape[1] = self.rows();
        }
        let column = |p: &Param<Tensor<2>>, j: usize| {
            let rows = self.rows();
            p.val().slice([0..rows, j..j + 1]).reshape(shape)
        };
        let a: Vec<Tensor<D>> = (0..=m).map(|j| column(&self.numerator, j)).collect();
        let b: Vec<Tensor<D>> = (0..n).map(|k| column(&self.denominator, k)).collect();
        let mut powers = vec![input.clone()];
        for _ in 2..=m.max(n) {
            powers.push(powers[powers.len() - 1].clone() * input.clone());
        }
        let mut numerator = input.clone() * a[1].clone() + a[0].clone();
        for j in 2..=m {
            numerator = numerator + a[j].clone() * powers[j - 1].clone();
        }
        let denominator = match self.version {
            PauVersion::A => {
                let mut q = input.abs() * b[0].clone().abs() + 1.0;
                for k in 2..=n {
                    q = q + b[k - 1].clone().abs() * powers[k - 1].clone().abs();
                }
                q
            }
            PauVersion::B => {
                let mut sum = input * b[0].clone();
                for k in 2..=n {
                    sum = sum + b[k - 1].clone() * powers[k - 1].clone();
                }
                sum.abs() + 1.0
            }
        };
        // P and Q both divided by max(1, |x|)^max(m, n), a constant to autodiff: the same
        // ratio and gradient, but Burn's division backward forms Q², which at degree 8 and
        // |x| = 1e4 (1e64) overflows f32 and zeroes the term through Q; scaled, Q is O(1).
        let top = powers[m.max(n) - 1].clone().detach().abs().clamp_min(1.0);
        (numerator / top.clone()) / (denominator / top)
    }
}

impl ActivationKind for Pau {
    const KIND: &'static str = "pau";
    const ALIASES: &'static [&'static str] = &[];
    const DESCRIPTION: &'static str =
        "P(x)/Q(x), a learned rational function without poles (Padé Activation Unit)";
    const BOUNDED: bool = false;
    const ELEMENTWISE: bool = true;
    type Config = PauConfig;
    fn validate(config: &PauConfig) -> Result<(), InvalidConfig> {
        config.validate()
    }
    fn from_config(config: &PauConfig, channels: usize, device: &Device) -> Self {
        config.init(channels, device)
    }
    fn has_fused_kernel(_: &PauConfig) -> bool {
        true
    }
    fn is_learnable(_: &PauConfig) -> bool {
        true
    }
    /// The formula of the first row (plots show one curve per module).
    fn formula(&self) -> Option<Pointwise> {
        let row = self.parameters().slice([0..1, 0..17]);
        let row = row.into_data().convert::<f32>().try_into_vec::<f32>().ok()?;
        Some(self.op().at(&row))
    }
    fn channelwise(&self, channels: usize) -> Option<(Channelwise, Tensor<2>)> {
        (self.rows() == 1 || self.rows() == channels).then(|| (self.op(), self.parameters()))
    }
    fn initial_formula(&self) -> Option<Pointwise> {
        Some(self.op().at(self.initial.as_deref()?))
    }
    fn channel_parameters(&self) -> Vec<(&'static str, Vec<f32>)> {
        let (m, n) = self.degrees();
        let rows = self.rows();
        let column = |p: &Param<Tensor<2>>, j: usize| host_values(p.val().slice([0..rows, j..j + 1]));
        let numerator = (0..=m).map(|j| (NUMERATOR_NAMES[j], column(&self.numerator, j)));
        let denominator = (0..n).map(|k| (DENOMINATOR_NAMES[k], column(&self.denominator, k)));
        numerator.chain(denominator).collect()
    }

    /// Each row's derivative (channels on dim 1).
    fn derivative<const D: usize>(&self, input: Tensor<D>) -> Option<Tensor<D>> {
        self.check_channels(&input);
        Some(channelwise_derivative(self.op(), self.parameters(), input))
    }
}
