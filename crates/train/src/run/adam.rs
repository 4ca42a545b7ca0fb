//! Adam and AdamW in one pass per parameter tensor on Flex.
//!
//! Burn's `Adam` runs each step as about ten tensor ops per parameter (the two moments, the
//! bias corrections, the square root, the division, the update), each a pass over the tensor
//! with a fresh allocation; on the compare MLP that was over half of a training step.
//! [`FusedAdam`] and [`FusedAdamW`] do the same arithmetic as Burn's `Adam` and `AdamW`, in the
//! same order and in f32, in one pass that updates the parameter and both moments in place; they
//! keep Burn's state types ([`AdamState`], [`AdamWState`]), so checkpoints are the same files
//! either way. Other backends, dtypes and AMSGrad run Burn's optimizer, as does everything with
//! `ACTIVATIONS_FUSED=0`.

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{
    Adam, AdamConfig, AdamState, AdamW, AdamWConfig, AdamWState, AdaptiveMomentumState,
    LearningRate, ModuleOptimizer, Optimizer,
};
use burn::tensor::{Device, Tensor};

/// β₁ and β₂: Burn's defaults, which are PyTorch's.
const BETAS: (f32, f32) = (0.9, 0.999);

/// The scalars of one step, as Burn's optimizers compute them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    pub lr: f32,
    pub beta_1: f32,
    pub beta_2: f32,
    pub rule: AdamRule,
}

/// How the moments become the update: Burn's `Adam` and `AdamW` order their operations
/// differently, and each order is kept so the results are theirs to the bit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AdamRule {
    /// `Adam`: `m · moment_factor / (√v + epsilon)`, with the L2 penalty
    /// `grad + weight_decay · param` first.
    Adam {
        /// 0 for none.
        weight_decay: f32,
        /// `sqrt(1 - β₂ᵗ) / (1 - β₁ᵗ)`.
        moment_factor: f32,
        /// `ε · sqrt(1 - β₂ᵗ)`.
        epsilon: f32,
    },
    /// `AdamW`: `(m / c₁) / (sqrt(v / c₂) + ε)` with `cᵢ = 1 - βᵢᵗ`, and the parameter decayed
    /// as `param · keep` (decoupled) before the update is subtracted.
    AdamW {
        correction_1: f32,
        correction_2: f32,
        epsilon: f32,
        /// `1 - lr · weight_decay`; `None` when that product is 0 (no multiplication).
        keep: Option<f32>,
    },
}

/// The backend extension: one Adam step over a parameter tensor.
#[backend_extension(Flex: cfg(feature = "flex"))]
pub trait FusedAdamOps: Backend {
    /// `(param, moment_1, moment_2)` after one step with `grad`.
    fn fused_adam_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moment_1: FloatTensor<Self>,
        moment_2: FloatTensor<Self>,
        step: AdamStep,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// Burn's `Adam` with β = 0.9, 0.999 and optional L2 weight decay, fused on Flex.
#[derive(Clone)]
pub struct FusedAdam {
    epsilon: f32,
    weight_decay: Option<f32>,
    /// The same optimizer, for what the fused pass does not take.
    fallback: Adam,
}

impl FusedAdam {
    /// `epsilon`: added to `√v̂` (PyTorch's default 1e-8; Burn's `AdamConfig` defaults to 1e-5).
    /// `weight_decay`: the L2 penalty added to the gradient.
    pub fn new(epsilon: f32, weight_decay: Option<f32>) -> Self {
        let config = AdamConfig::new()
            .with_beta_1(BETAS.0)
            .with_beta_2(BETAS.1)
            .with_epsilon(epsilon)
            .with_weight_decay(weight_decay.map(WeightDecayConfig::new));
        Self {
            epsilon,
            weight_decay,
            fallback: config.build(),
        }
    }

    /// As a module optimizer.
    pub fn init(self) -> ModuleOptimizer {
        ModuleOptimizer::from(self)
    }
}

/// Burn's `AdamW` with β = 0.9, 0.999 and decoupled weight decay, fused on Flex.
#[derive(Clone)]
pub struct FusedAdamW {
    epsilon: f32,
    weight_decay: f32,
    fallback: AdamW,
}

impl FusedAdamW {
    /// `epsilon`: added to `√v̂`; `weight_decay`: the decoupled decay (`param · (1 - lr · λ)`).
    pub fn new(epsilon: f32, weight_decay: f32) -> Self {
        let config = AdamWConfig::new()
            .with_beta_1(BETAS.0)
            .with_beta_2(BETAS.1)
            .with_epsilon(epsilon)
            .with_weight_decay(weight_decay);
        Self {
            epsilon,
            weight_decay,
            fallback: config.build(),
        }
    }

    /// As a module optimizer.
    pub fn init(self) -> ModuleOptimizer {
        ModuleOptimizer::from(self)
    }
}

/// Whether the fused pass takes this tensor: what the models' kernels take (f32 on Flex,
/// kernels on), outside autodiff.
fn fits<const D: usize>(tensor: &Tensor<D>) -> bool {
    models::kernels::has_kernels(tensor) && !tensor.device().is_autodiff()
}

/// Whether the fused pass takes this step (else Burn's optimizer runs it): no AMSGrad state,
/// and parameter and gradient [`fit`](fits).
fn fusable<const D: usize>(
    tensor: &Tensor<D>,
    grad: &Tensor<D>,
    state: Option<&AdaptiveMomentumState<D>>,
) -> bool {
    let amsgrad = state.is_some_and(|s| s.max_moment_2.is_some());
    !amsgrad && fits(tensor) && fits(grad)
}

/// One fused step: the new parameter and moments.
fn fused_step<const D: usize>(
    lr: LearningRate,
    tensor: Tensor<D>,
    grad: Tensor<D>,
    state: Option<AdaptiveMomentumState<D>>,
    rule: impl FnOnce(i32) -> AdamRule,
) -> (Tensor<D>, AdaptiveMomentumState<D>) {
    let (time, moment_1, moment_2) = match state {
        Some(state) => (state.time + 1, state.moment_1, state.moment_2),
        // Zero moments give Burn's first step exactly: β·0 + (1 - β)·g = (1 - β)·g.
        None => (1, tensor.zeros_like(), tensor.zeros_like()),
    };
    let step = AdamStep {
        lr: lr as f32,
        beta_1: BETAS.0,
        beta_2: BETAS.1,
        rule: rule(time as i32),
    };
    let (param, moment_1, moment_2) = <Dispatch as FusedAdamOps>::fused_adam_step(
        tensor.into_dispatch(),
        grad.into_dispatch(),
        moment_1.into_dispatch(),
        moment_2.into_dispatch(),
        step,
    );
    let momentum = AdaptiveMomentumState::new(
        time,
        Tensor::from_dispatch(moment_1),
        Tensor::from_dispatch(moment_2),
    );
    (Tensor::from_dispatch(param), momentum)
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdamState<D>>,
    ) -> (Tensor<D>, Option<AdamState<D>>) {
        let rule = |time: i32| {
            let correction_2 = (1.0 - BETAS.1.powi(time)).sqrt();
            AdamRule::Adam {
                weight_decay: self.weight_decay.unwrap_or(0.0),
                moment_factor: correction_2 / (1.0 - BETAS.0.powi(time)),
                epsilon: self.epsilon * correction_2,
            }
        };
        if !fusable(&tensor, &grad, state.as_ref().map(|s| &s.momentum)) {
            return self.fallback.step(lr, tensor, grad, state);
        }
        let (tensor, momentum) = fused_step(lr, tensor, grad, state.map(|s| s.momentum), rule);
        (tensor, Some(AdamState::new(momentum)))
    }

    fn to_device<const D: usize>(state: AdamState<D>, device: &Device) -> AdamState<D> {
        Adam::to_device(state, device)
    }
}

impl Optimizer for FusedAdamW {
    type State<const D: usize> = AdamWState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdamWState<D>>,
    ) -> (Tensor<D>, Option<AdamWState<D>>) {
        // As Burn: the decay rate in f64, `1 - rate` rounded to f32 once.
        let decay_rate = lr * self.weight_decay as f64;
        let rule = |time: i32| AdamRule::AdamW {
            correction_1: 1.0 - BETAS.0.powi(time),
            correction_2: 1.0 - BETAS.1.powi(time),
            epsilon: self.epsilon,
            keep: (decay_rate != 0.0).then_some((1.0 - decay_rate) as f32),
        };
        if !fusable(&tensor, &grad, state.as_ref().map(|s| &s.momentum)) {
            return self.fallback.step(lr, tensor, grad, state);
        }
        let (tensor, momentum) = fused_step(lr, tensor, grad, state.map(|s| s.momentum), rule);
        (tensor, Some(AdamWState::new(momentum)))
    }

    fn to_device<const D: usize>(state: AdamWState<D>, device: &Device) -> AdamWState<D> {
        AdamW::to_device(state, device)
    }
}

/// One step over the elements, in Burn's order of operations (no fused multiply-adds, so the
/// result is Burn's to the bit). Each branch hands [`each`] its own closure, with the decay
/// switch a constant in it, so every loop is compiled (and vectorised) on its own.
#[inline(always)]
fn step_elements(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], step: AdamStep) {
    let AdamStep { lr, .. } = step;
    match step.rule {
        AdamRule::Adam {
            weight_decay,
            moment_factor,
            epsilon,
        } => {
            let adam = |p: &mut f32, g: f32, m: &mut f32, v: &mut f32, decay: bool| {
                let g = if decay { *p * weight_decay + g } else { g };
                update_moments(m, v, g, &step);
                let update = *m * moment_factor / (v.sqrt() + epsilon);
                *p -= update * lr;
            };
            if weight_decay != 0.0 {
                each(p, g, m, v, |p, g, m, v| adam(p, g, m, v, true))
            } else {
                each(p, g, m, v, |p, g, m, v| adam(p, g, m, v, false))
            }
        }
        AdamRule::AdamW {
            correction_1,
            correction_2,
            epsilon,
            keep,
        } => {
            let adamw = |p: &mut f32, g: f32, m: &mut f32, v: &mut f32, keep: Option<f32>| {
                update_moments(m, v, g, &step);
                let update = (*m / correction_1) / ((*v / correction_2).sqrt() + epsilon);
                let decayed = keep.map_or(*p, |keep| *p * keep);
                *p = decayed - update * lr;
            };
            match keep {
                Some(keep) => each(p, g, m, v, |p, g, m, v| adamw(p, g, m, v, Some(keep))),
                None => each(p, g, m, v, |p, g, m, v| adamw(p, g, m, v, None)),
            }
        }
    }
}

/// The moments' update, shared by both rules: `m = β₁m + (1-β₁)g`, `v = β₂v + (g·g)(1-β₂)`.
#[inline(always)]
fn update_moments(m: &mut f32, v: &mut f32, g: f32, step: &AdamStep) {
    *m = *m * step.beta_1 + g * (1.0 - step.beta_1);
    *v = *v * step.beta_2 + g * g * (1.0 - step.beta_2);
}

/// `apply(param, grad, moment_1, moment_2)` on each element.
#[inline(always)]
fn each(
    param: &mut [f32],
    grad: &[f32],
    moment_1: &mut [f32],
    moment_2: &mut [f32],
    mut apply: impl FnMut(&mut f32, f32, &mut f32, &mut f32),
) {
    let moments = moment_1.iter_mut().zip(moment_2.iter_mut());
    for ((p, &g), (m, v)) in param.iter_mut().zip(grad).zip(moments) {
        apply(p, g, m, v);
    }
}

#[cfg(feature = "flex")]
mod flex {
    use super::{AdamStep, FusedAdamOps, step_elements};
    use activations::fused::flex_storage::{contiguous, elements, elements_mut, owned_copy};
    use burn::backend::Flex;
    use burn::backend::flex::FlexTensor;
    use rayon::prelude::*;

    /// Elements per parallel task; a tensor this small runs on the calling thread.
    const TASK: usize = 1 << 15;

    /// The tensor's elements, writable: in place when it owns its buffer, else in a copy.
    fn writable(tensor: FlexTensor) -> FlexTensor {
        let mut tensor = contiguous(tensor);
        if elements_mut(&mut tensor).is_none() {
            tensor = owned_copy(&tensor);
        }
        tensor
    }

    fn run(param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32], step: AdamStep) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked just above.
            return unsafe { run_avx512(param, grad, m, v, step) };
        }
        step_elements(param, grad, m, v, step)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn run_avx512(param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32], step: AdamStep) {
        step_elements(param, grad, m, v, step)
    }

    impl FusedAdamOps for Flex {
        fn fused_adam_step(
            param: FlexTensor,
            grad: FlexTensor,
            moment_1: FlexTensor,
            moment_2: FlexTensor,
            step: AdamStep,
        ) -> (FlexTensor, FlexTensor, FlexTensor) {
            let grad = contiguous(grad);
            let (mut param, mut m, mut v) =
                (writable(param), writable(moment_1), writable(moment_2));
            {
                let grad = elements(&grad);
                let param_values = elements_mut(&mut param).expect("owned");
                let m_values = elements_mut(&mut m).expect("owned");
                let v_values = elements_mut(&mut v).expect("owned");
                assert!(
                    [param_values.len(), m_values.len(), v_values.len()]
                        .iter()
                        .all(|&len| len == grad.len()),
                    "adam: parameter, gradient and moments of one shape"
                );
                if grad.len() <= TASK {
                    // On this thread: handing one task to rayon's pool costs a wake-up.
                    run(param_values, grad, m_values, v_values, step);
                } else {
                    param_values
                        .par_chunks_mut(TASK)
                        .zip(grad.par_chunks(TASK))
                        .zip(m_values.par_chunks_mut(TASK))
                        .zip(v_values.par_chunks_mut(TASK))
                        .for_each(|(((p, g), m), v)| run(p, g, m, v, step));
                }
            }
            (param, m, v)
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::GradientsParams;
    use burn::tensor::Distribution;

    const LR: LearningRate = 3e-3;

    fn random<const D: usize>(shape: [usize; D], seed: u64) -> Tensor<D> {
        let device = Device::flex();
        device.seed(seed);
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), &device)
    }

    fn bits<const D: usize>(tensor: &Tensor<D>) -> Vec<u32> {
        let values = tensor.to_data().try_to_vec::<f32>().unwrap();
        values.into_iter().map(f32::to_bits).collect()
    }

    /// Six steps of the fused pass and of Burn's `Adam` on the same gradients: the parameter
    /// and both moments agree to the bit, with and without weight decay, on a tensor of several
    /// parallel chunks and on a small one.
    #[test]
    fn steps_are_burns_adam_to_the_bit() {
        for weight_decay in [None, Some(5e-4)] {
            let fused = FusedAdam::new(1e-8, weight_decay);
            let burn = AdamConfig::new()
                .with_epsilon(1e-8)
                .with_weight_decay(weight_decay.map(WeightDecayConfig::new))
                .build();
            let momentum = |s: &AdamState<_>| s.momentum.clone();
            check_steps(&fused, &burn, random::<2>([300, 250], 1), momentum);
            check_steps(&fused, &burn, random::<1>([7], 2), |s| s.momentum.clone());
        }
    }

    /// The same for Burn's `AdamW`, with and without its decoupled weight decay.
    #[test]
    fn steps_are_burns_adamw_to_the_bit() {
        for weight_decay in [0.0, 1e-2] {
            let fused = FusedAdamW::new(1e-8, weight_decay);
            let burn = AdamWConfig::new()
                .with_epsilon(1e-8)
                .with_weight_decay(weight_decay)
                .build();
            let momentum = |s: &AdamWState<_>| s.momentum.clone();
            check_steps(&fused, &burn, random::<2>([300, 250], 3), momentum);
            check_steps(&fused, &burn, random::<1>([7], 4), |s| s.momentum.clone());
        }
    }

    fn check_steps<O: Optimizer, B: Optimizer<State<D> = O::State<D>>, const D: usize>(
        fused: &O,
        burn: &B,
        start: Tensor<D>,
        momentum: impl Fn(&O::State<D>) -> AdaptiveMomentumState<D>,
    ) {
        assert!(fits(&start), "the fused pass must run on Flex f32");
        let (mut ours, mut theirs) = (start.clone(), start);
        let (mut our_state, mut their_state) = (None, None);
        for step in 0..6u64 {
            let grad = random::<D>(ours.shape().dims(), 100 + step).mul_scalar(0.1);
            (ours, our_state) = fused.step(LR, ours, grad.clone(), our_state);
            (theirs, their_state) = burn.step(LR, theirs, grad, their_state);
            let (our_moments, their_moments) = (
                momentum(our_state.as_ref().unwrap()),
                momentum(their_state.as_ref().unwrap()),
            );
            assert_eq!(bits(&ours), bits(&theirs), "parameter after step {step}");
            assert_eq!(our_moments.time, their_moments.time);
            assert_eq!(
                bits(&our_moments.moment_1),
                bits(&their_moments.moment_1),
                "first moment after step {step}"
            );
            assert_eq!(
                bits(&our_moments.moment_2),
                bits(&their_moments.moment_2),
                "second moment after step {step}"
            );
        }
    }

    /// A model trained through `ModuleOptimizer`: two steps with the fused optimizer, its
    /// record loaded into Burn's `Adam`, which continues exactly as the fused one does (the
    /// checkpoint files are the same either way), and the parameters did move.
    #[test]
    fn records_carry_over_to_burns_adam() {
        let device = Device::flex().autodiff();
        device.seed(7);
        let start: Linear = LinearConfig::new(40, 10).init(&device);
        let input = Tensor::<2>::random([16, 40], Distribution::Normal(0.0, 1.0), &device);
        let grads = |model: &Linear| {
            let loss = model.forward(input.clone()).powf_scalar(2.0).mean();
            GradientsParams::from_grads(loss.backward(), model)
        };
        let mut fused = FusedAdam::new(1e-8, Some(1e-3)).init();
        let mut model = start.clone();
        for _ in 0..2 {
            let step_grads = grads(&model);
            model = fused.step(LR, model, step_grads);
        }
        let mut burn = AdamConfig::new()
            .with_epsilon(1e-8)
            .with_weight_decay(Some(WeightDecayConfig::new(1e-3)))
            .init()
            .load_record(fused.to_record());
        let step_grads = grads(&model);
        let ours = fused.step(LR, model.clone(), step_grads);
        let step_grads = grads(&model);
        let theirs = burn.step(LR, model, step_grads);
        assert_eq!(bits(&ours.weight.val()), bits(&theirs.weight.val()));
        let bias = |m: &Linear| bits(&m.bias.as_ref().unwrap().val());
        assert_eq!(bias(&ours), bias(&theirs));
        assert_ne!(bits(&ours.weight.val()), bits(&start.weight.val()));
    }
}
