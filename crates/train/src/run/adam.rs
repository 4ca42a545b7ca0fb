//! Adam in one pass per parameter tensor on Flex.
//!
//! Burn's `Adam` runs each step as about ten tensor ops per parameter (the two moments, the
//! bias corrections, the square root, the division, the update), each a pass over the tensor
//! with a fresh allocation; on the compare MLP that was over half of a training step. [`FusedAdam`]
//! does the same arithmetic, in the same order and in f32, in one pass that updates the
//! parameter and both moments in place; it keeps Burn's state type ([`AdamState`]), so
//! checkpoints are the same files either way. Other backends, dtypes and AMSGrad run Burn's
//! `Adam`, as does everything with `ACTIVATIONS_FUSED=0`.

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{
    Adam, AdamConfig, AdamState, AdaptiveMomentumState, LearningRate, ModuleOptimizer, Optimizer,
};
use burn::tensor::{DType, Device, Tensor};

/// The scalars of one Adam step, as Burn's `Adam` computes them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    pub lr: f32,
    pub beta_1: f32,
    pub beta_2: f32,
    /// L2 penalty added to the gradient (`grad + weight_decay · param`); 0 for none.
    pub weight_decay: f32,
    /// `sqrt(1 - β₂ᵗ) / (1 - β₁ᵗ)`.
    pub moment_factor: f32,
    /// `ε · sqrt(1 - β₂ᵗ)`.
    pub epsilon: f32,
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

/// Adam with PyTorch's defaults as this project configures it (β = 0.9, 0.999; ε = 1e-8;
/// optional L2 weight decay), fused on Flex.
#[derive(Clone)]
pub struct FusedAdam {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    weight_decay: Option<f32>,
    /// The same optimizer, for what the fused pass does not take.
    fallback: Adam,
}

impl FusedAdam {
    pub fn new(epsilon: f32, weight_decay: Option<f32>) -> Self {
        // β: Burn's defaults, which are PyTorch's.
        let (beta_1, beta_2) = (0.9, 0.999);
        let config = AdamConfig::new()
            .with_beta_1(beta_1)
            .with_beta_2(beta_2)
            .with_epsilon(epsilon)
            .with_weight_decay(weight_decay.map(WeightDecayConfig::new));
        Self {
            beta_1,
            beta_2,
            epsilon,
            weight_decay,
            fallback: config.build(),
        }
    }

    /// As a module optimizer.
    pub fn init(self) -> ModuleOptimizer {
        ModuleOptimizer::from(self)
    }

    fn fits<const D: usize>(tensor: &Tensor<D>) -> bool {
        if !activations::fused::fused_enabled()
            || tensor.dtype() != DType::F32
            || tensor.device().is_autodiff()
        {
            return false;
        }
        #[cfg(feature = "flex")]
        {
            use burn::backend::DispatchDevice;
            matches!(
                tensor.device().as_dispatch().clone().inner(),
                DispatchDevice::Flex(_)
            )
        }
        #[cfg(not(feature = "flex"))]
        false
    }
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
        let amsgrad = state
            .as_ref()
            .is_some_and(|s| s.momentum.max_moment_2.is_some());
        if amsgrad || !Self::fits(&tensor) || !Self::fits(&grad) {
            return self.fallback.step(lr, tensor, grad, state);
        }
        let (time, moment_1, moment_2) = match state {
            Some(state) => {
                let momentum = state.momentum;
                (momentum.time + 1, momentum.moment_1, momentum.moment_2)
            }
            // Zero moments give Burn's first step exactly: β·0 + (1 - β)·g = (1 - β)·g.
            None => (1, tensor.zeros_like(), tensor.zeros_like()),
        };
        let exponent = time as i32;
        let correction_2 = (1.0 - self.beta_2.powi(exponent)).sqrt();
        let step = AdamStep {
            lr: lr as f32,
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            weight_decay: self.weight_decay.unwrap_or(0.0),
            moment_factor: correction_2 / (1.0 - self.beta_1.powi(exponent)),
            epsilon: self.epsilon * correction_2,
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
        (Tensor::from_dispatch(param), Some(AdamState::new(momentum)))
    }

    fn to_device<const D: usize>(state: AdamState<D>, device: &Device) -> AdamState<D> {
        Adam::to_device(state, device)
    }
}

/// One step over the elements, in Burn's order of operations (no fused multiply-adds, so the
/// result is Burn's to the bit).
#[inline(always)]
fn step_elements<const DECAY: bool>(
    param: &mut [f32],
    grad: &[f32],
    moment_1: &mut [f32],
    moment_2: &mut [f32],
    step: AdamStep,
) {
    let (keep_1, keep_2) = (1.0 - step.beta_1, 1.0 - step.beta_2);
    let moments = moment_1.iter_mut().zip(moment_2.iter_mut());
    for ((p, &g), (m, v)) in param.iter_mut().zip(grad).zip(moments) {
        let g = if DECAY { *p * step.weight_decay + g } else { g };
        *m = *m * step.beta_1 + g * keep_1;
        *v = *v * step.beta_2 + g * g * keep_2;
        let update = *m * step.moment_factor / (v.sqrt() + step.epsilon);
        *p -= update * step.lr;
    }
}

#[cfg(feature = "flex")]
mod flex {
    use super::{AdamStep, FusedAdamOps, step_elements};
    use activations::fused::flex_storage::{contiguous, elements, elements_mut, owned_copy};
    use burn::backend::Flex;
    use burn::backend::flex::FlexTensor;
    use rayon::prelude::*;

    /// Elements per parallel task: below this a tensor is one task (a wake-up costs more).
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
        run_portable(param, grad, m, v, step)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn run_avx512(param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32], step: AdamStep) {
        run_portable(param, grad, m, v, step)
    }

    #[inline(always)]
    fn run_portable(param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32], step: AdamStep) {
        if step.weight_decay != 0.0 {
            step_elements::<true>(param, grad, m, v, step)
        } else {
            step_elements::<false>(param, grad, m, v, step)
        }
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
                param_values
                    .par_chunks_mut(TASK)
                    .zip(grad.par_chunks(TASK))
                    .zip(m_values.par_chunks_mut(TASK))
                    .zip(v_values.par_chunks_mut(TASK))
                    .for_each(|(((p, g), m), v)| run(p, g, m, v, step));
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
            check_steps(&fused, &burn, random([300, 250], 1));
            check_steps(&fused, &burn, random([7], 2));
        }
    }

    fn check_steps<const D: usize>(fused: &FusedAdam, burn: &Adam, start: Tensor<D>) {
        assert!(
            FusedAdam::fits(&start),
            "the fused pass must run on Flex f32"
        );
        let (mut ours, mut theirs) = (start.clone(), start);
        let (mut our_state, mut their_state) = (None, None);
        for step in 0..6u64 {
            let grad = random::<D>(ours.shape().dims(), 100 + step).mul_scalar(0.1);
            (ours, our_state) = fused.step(LR, ours, grad.clone(), our_state);
            (theirs, their_state) = burn.step(LR, theirs, grad, their_state);
            let (our_moments, their_moments) = (
                &our_state.as_ref().unwrap().momentum,
                &their_state.as_ref().unwrap().momentum,
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
