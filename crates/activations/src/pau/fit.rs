//! PAU's initial coefficients: a least-squares fit of a named function on `[-3, 3]`, as the
//! authors' code computes its initial coefficients (Levenberg–Marquardt on the rational
//! function itself, starting from all ones), here in f64 with the analytic Jacobian.

use super::PauVersion;
use crate::fused::Pointwise;
use crate::gelu::GeluFormula;
use crate::identity::IdentityFormula;
use crate::leaky_relu::LeakyReluFormula;
use crate::mish::MishFormula;
use crate::relu::ReluFormula;
use crate::sigmoid::SigmoidFormula;
use crate::silu::SiluFormula;
use crate::tanh::TanhFormula;
use serde::{Deserialize, Serialize};

/// The function a [`Pau`](super::Pau) starts as.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauInit {
    /// Leaky ReLU with slope 0.01 (the default, as the paper).
    #[default]
    LeakyRelu,
    /// ReLU.
    Relu,
    /// GELU (exact).
    Gelu,
    /// SiLU (`β = 1`).
    Silu,
    /// tanh.
    Tanh,
    /// The logistic sigmoid.
    Sigmoid,
    /// Mish.
    Mish,
    /// `x`.
    Identity,
}

impl PauInit {
    /// The function, from its activation's formula.
    pub(crate) fn function(self) -> Pointwise {
        match self {
            PauInit::LeakyRelu => Pointwise::new(LeakyReluFormula {
                negative_slope: 0.01,
            }),
            PauInit::Relu => Pointwise::new(ReluFormula {}),
            PauInit::Gelu => Pointwise::new(GeluFormula {}),
            PauInit::Silu => Pointwise::new(SiluFormula { beta: 1.0 }),
            PauInit::Tanh => Pointwise::new(TanhFormula {}),
            PauInit::Sigmoid => Pointwise::new(SigmoidFormula {}),
            PauInit::Mish => Pointwise::new(MishFormula {}),
            PauInit::Identity => Pointwise::new(IdentityFormula {}),
        }
    }
}

/// The interval the initial coefficients fit, and how many evenly spaced points.
const RANGE: f64 = 3.0;
const POINTS: usize = 1201;
const MAX_ITERATIONS: usize = 500;
/// The values every coefficient starts at, one fit each.
const STARTS: [f64; 3] = [1.0, 0.1, 0.01];

/// `(a₀ … a_m, b₁ … b_n)` whose rational function (of `version`) fits `init` on `[-3, 3]` in
/// least squares. Deterministic: the same arguments give the same coefficients.
pub(super) fn initial_coefficients(
    init: PauInit,
    m: usize,
    n: usize,
    version: PauVersion,
) -> (Vec<f32>, Vec<f32>) {
    let function = init.function();
    let xs: Vec<f64> = (0..POINTS)
        .map(|i| -RANGE + 2.0 * RANGE * i as f64 / (POINTS - 1) as f64)
        .collect();
    let ys: Vec<f64> = xs.iter().map(|&x| function.value(x as f32) as f64).collect();
    let model = Model { m, n, version };
    // From all ones as the authors' code, and from smaller starts, which escape the local
    // minima that all ones falls into at some degrees; the best fit wins (ties: the first).
    let theta = STARTS
        .iter()
        .map(|&start| levenberg_marquardt(&model, &xs, &ys, vec![start; m + 1 + n]))
        .map(|theta| (model.cost(&theta, &xs, &ys), theta))
        .fold(None, |best: Option<(f64, Vec<f64>)>, (cost, theta)| match best {
            Some((best_cost, _)) if best_cost <= cost => best,
            _ => Some((cost, theta)),
        })
        .expect("at least one start")
        .1;
    let (a, b) = theta.split_at(m + 1);
    let to_f32 = |v: &[f64]| v.iter().map(|&c| c as f32).collect();
    (to_f32(a), to_f32(b))
}

/// The rational function of given degrees and version over `θ = (a₀ … a_m, b₁ … b_n)`.
struct Model {
    m: usize,
    n: usize,
    version: PauVersion,
}

impl Model {
    /// `f(x)` and its gradient with respect to `θ` (written into `jacobian_row`).
    fn evaluate(&self, theta: &[f64], x: f64, jacobian_row: &mut [f64]) -> f64 {
        let (a, b) = theta.split_at(self.m + 1);
        let degree = self.m.max(self.n);
        let powers: Vec<f64> = (0..=degree).map(|j| x.powi(j as i32)).collect();
        let p: f64 = a.iter().zip(&powers).map(|(c, xp)| c * xp).sum();
        let (q, dq_db): (f64, Vec<f64>) = match self.version {
            PauVersion::A => {
                let q = 1.0 + (1..=self.n).map(|k| b[k - 1].abs() * powers[k].abs()).sum::<f64>();
                let dq = (1..=self.n)
                    .map(|k| b[k - 1].signum() * powers[k].abs())
                    .collect();
                (q, dq)
            }
            PauVersion::B => {
                let sum: f64 = (1..=self.n).map(|k| b[k - 1] * powers[k]).sum();
                let dq = (1..=self.n).map(|k| sum.signum() * powers[k]).collect();
                (1.0 + sum.abs(), dq)
            }
        };
        for j in 0..=self.m {
            jacobian_row[j] = powers[j] / q;
        }
        for k in 0..self.n {
            jacobian_row[self.m + 1 + k] = -p / (q * q) * dq_db[k];
        }
        p / q
    }

    /// The sum of squared residuals, and `JᵀJ` and `Jᵀr` when asked.
    fn normal_equations(&self, theta: &[f64], xs: &[f64], ys: &[f64]) -> (f64, Vec<f64>, Vec<f64>) {
        let size = theta.len();
        let mut jtj = vec![0.0; size * size];
        let mut jtr = vec![0.0; size];
        let mut row = vec![0.0; size];
        let mut cost = 0.0;
        for (&x, &y) in xs.iter().zip(ys) {
            let residual = self.evaluate(theta, x, &mut row) - y;
            cost += residual * residual;
            for i in 0..size {
                jtr[i] += row[i] * residual;
                for j in 0..size {
                    jtj[i * size + j] += row[i] * row[j];
                }
            }
        }
        (cost, jtj, jtr)
    }

    fn cost(&self, theta: &[f64], xs: &[f64], ys: &[f64]) -> f64 {
        let mut row = vec![0.0; theta.len()];
        xs.iter()
            .zip(ys)
            .map(|(&x, &y)| (self.evaluate(theta, x, &mut row) - y).powi(2))
            .sum()
    }
}

/// Minimises the squared residuals from `theta` with Marquardt's damping `λ·diag(JᵀJ)`.
fn levenberg_marquardt(model: &Model, xs: &[f64], ys: &[f64], mut theta: Vec<f64>) -> Vec<f64> {
    let size = theta.len();
    let mut lambda = 1e-3;
    for _ in 0..MAX_ITERATIONS {
        let (cost, jtj, jtr) = model.normal_equations(&theta, xs, ys);
        loop {
            let mut system = jtj.clone();
            for i in 0..size {
                system[i * size + i] += lambda * jtj[i * size + i].max(1e-12);
            }
            let step = solve(system, jtr.iter().map(|g| -g).collect());
            let candidate: Vec<f64> = theta.iter().zip(&step).map(|(t, s)| t + s).collect();
            let new_cost = model.cost(&candidate, xs, ys);
            if new_cost.is_finite() && new_cost < cost {
                theta = candidate;
                lambda = (lambda / 3.0).max(1e-12);
                if cost - new_cost <= 1e-12 * cost {
                    return theta;
                }
                break;
            }
            lambda *= 4.0;
            if lambda > 1e12 {
                return theta;
            }
        }
    }
    theta
}

/// Solves `A·x = b` (`A` row-major, square) by Gaussian elimination with partial pivoting.
fn solve(mut a: Vec<f64>, mut b: Vec<f64>) -> Vec<f64> {
    let size = b.len();
    for col in 0..size {
        let pivot = (col..size)
            .max_by(|&i, &j| a[i * size + col].abs().total_cmp(&a[j * size + col].abs()))
            .expect("a non-empty column");
        if pivot != col {
            for k in 0..size {
                a.swap(col * size + k, pivot * size + k);
            }
            b.swap(col, pivot);
        }
        let diagonal = a[col * size + col];
        if diagonal == 0.0 {
            continue;
        }
        for row in col + 1..size {
            let factor = a[row * size + col] / diagonal;
            for k in col..size {
                a[row * size + k] -= factor * a[col * size + k];
            }
            b[row] -= factor * b[col];
        }
    }
    let mut x = vec![0.0; size];
    for row in (0..size).rev() {
        let diagonal = a[row * size + row];
        let rest: f64 = (row + 1..size).map(|k| a[row * size + k] * x[k]).sum();
        x[row] = if diagonal == 0.0 { 0.0 } else { (b[row] - rest) / diagonal };
    }
    x
}
