//! The training loop: epochs of shuffled mini-batches, evaluation, checkpoints, resume.
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::{Int, Tensor, TensorData};
use models::Model;

use super::adam::{FusedAdam, FusedAdamW};
use crate::backend::Backend;
use crate::config::{Optimizer, RunConfig, Schedule};
use crate::data::source::DataOptions;
use crate::data::{Split, dataset::Splits, load_splits};
use crate::progress::Progress;
use crate::rng::SplitMix64;
use crate::run::TrainError;
use crate::run::checkpoint::{self, CheckpointState, PartialEpoch, Position};
use crate::run::diagnostics::{
    DiagnosticRecord, GradNormMeter, epoch_records, layer_names, probe_stats, weight_grad_norms,
};
use crate::run::dir::{RunDir, Summary};
use crate::run::lock::RunLock;
use crate::run::metrics::{EpochRecord, Evaluation, SplitName, evaluate};
use crate::run::stop::{self, StopRequest};

/// How to run (what the config does not say).
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// The backend to train on.
    pub backend: Backend,
    /// The run directory (created if needed).
    pub out_dir: PathBuf,
    /// Continue from the run directory's last checkpoint.
    pub resume: bool,
    /// No progress output.
    pub quiet: bool,
    /// Stop after this epoch as an interrupted run would, keeping its checkpoint; a later
    /// `resume` continues exactly where it stopped (time-limited jobs, tests). `None`: run all.
    pub stop_after: Option<usize>,
    /// Record dead units, sparsity, saturation and gradient norms every epoch
    /// (`diagnostics.csv`; costs a few percent of training time).
    pub diagnostics: bool,
    /// Polled after every step: once set (by SIGTERM/SIGINT through
    /// [`StopRequest::on_signals`], or by a call), the run writes a checkpoint at that step
    /// and returns [`TrainError::Stopped`]. The default is never set.
    pub stop: StopRequest,
}

/// The data options a run config implies.
pub fn data_options(config: &RunConfig) -> DataOptions {
    DataOptions {
        dir: config.data.dir.clone(),
        offline: config.data.offline,
        no_verify: !config.data.verify,
        ..Default::default()
    }
}

/// Loads the data a config asks for.
pub fn load_data(config: &RunConfig) -> Result<Splits, TrainError> {
    load_splits(
        &data_options(config),
        config.data.validation,
        config.data.train_limit,
        config.data.test_limit,
        config.train.seed,
    )
    .map_err(TrainError::from)
}

pub(crate) fn optimizer(config: &RunConfig) -> ModuleOptimizer {
    let t = &config.train;
    let penalty = (t.weight_decay > 0.0).then_some(t.weight_decay as f32);
    let decay = penalty.map(WeightDecayConfig::new);
    match t.optimizer {
        // ε = 1e-8 as PyTorch (Burn's default is 1e-5). Burn's Adam/AdamW, one pass per tensor on Flex.
        Optimizer::Adam => FusedAdam::new(1e-8, penalty).init(),
        Optimizer::Adamw => FusedAdamW::new(1e-8, t.weight_decay as f32).init(),
        Optimizer::Sgd => SgdConfig::new()
            .with_weight_decay(decay)
            .with_momentum((t.momentum > 0.0).then(|| {
                MomentumConfig::new()
                    .with_momentum(t.momentum)
                    .with_dampening(0.0)
            }))
            .init(),
    }
}

fn learning_rate(config: &RunConfig, step: usize, total_steps: usize) -> f64 {
    match config.train.schedule {
        Schedule::Constant => config.train.lr,
        Schedule::Cosine => {
            let progress = step as f64 / total_steps.max(1) as f64;
            config.train.lr * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
        }
    }
}

/// Images in the diagnostics probe batch (the first training images).
const PROBE_IMAGES: usize = 512;
/// Gradient norms are sampled every this many steps.
const GRAD_NORM_EVERY: usize = 10;

/// The seed of one epoch's data order, so that a resumed run draws exactly what an
/// uninterrupted one would.
fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(epoch as u64)
}

/// The seed of the device's random numbers in one step (dropout masks, random slopes): a
/// function of the position alone, so a run stopped after any step resumes with the very
/// numbers an uninterrupted one draws.
fn step_seed(epoch_seed: u64, step: usize) -> u64 {
    SplitMix64::new(epoch_seed ^ (step as u64).wrapping_mul(0xd1b5_4a32_d192_ed03)).next_u64()
}

/// Initialises every lazily initialised float parameter of a module.
struct MaterializeParams;

impl ModuleVisitor for MaterializeParams {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}

/// Trains as `config` says on the given data, writing the run directory; returns the summary.
///
/// The run directory is locked for the whole run: a second process pointed at it gets an
/// error that names this one's PID.
pub fn train_on(
    config: &RunConfig,
    data: &Splits,
    options: &TrainOptions,
) -> Result<Summary, TrainError> {
    let run = RunDir::create(&options.out_dir)?;
    let lock = run.lock()?;
    train_locked(config, data, options, run, lock)
}

/// [`train_on`] in a run directory whose lock the caller already holds (a sweep takes it
/// first, to skip runs another process is training).
pub(crate) fn train_locked(
    config: &RunConfig,
    data: &Splits,
    options: &TrainOptions,
    run: RunDir,
    _lock: RunLock,
) -> Result<Summary, TrainError> {
    let device = options.backend.device();
    let train_device = device.clone().autodiff();
    train_device.seed(config.train.seed);
    let mut model = config.model.init(&train_device);
    // Burn draws a parameter's initial values when it is first used, which would be after the
    // first step's seed: draw them now, from `train.seed`. Lazy backends (wgpu and cuda through
    // burn-fusion) draw random numbers when queued operations run, not when they are recorded:
    // flushing before each seed() gives each seed the draws it is meant for (a no-op on the
    // eager CPU backends).
    model.visit(&mut MaterializeParams);
    let _ = train_device.flush();
    let mut optim = optimizer(config);
    let mut history: Vec<EpochRecord> = Vec::new();
    let mut train_seconds = 0.0;
    let mut first_epoch = 1;
    let mut diagnostics: Vec<DiagnosticRecord> = Vec::new();
    let mut partial: Option<PartialEpoch> = None;

    if !options.resume {
        checkpoint::clear(&run)?;
    }
    if options.resume {
        let resumed = checkpoint::resume(&run, config, model, optim)?;
        (model, optim) = (resumed.model, resumed.optim);
        if let Some(state) = resumed.state {
            if !options.quiet {
                eprintln!("resuming {}", state.position());
            }
            first_epoch = state.epochs_done + 1;
            history = state.history;
            train_seconds = state.train_seconds;
            diagnostics = state.diagnostics;
            partial = state.partial;
        }
    }

    let loss_fn = CrossEntropyLossConfig::new().init(&train_device);
    let batch_size = config.train.batch_size;
    let steps_per_epoch = data.train.len().div_ceil(batch_size);
    let total_steps = steps_per_epoch * config.train.epochs;
    let activation = config.model.activation().name().to_string();
    // Diagnostics look at the same fixed images every epoch.
    let probe_indices: Vec<usize> = (0..data.train.len().min(PROBE_IMAGES)).collect();

    for epoch in first_epoch..=config.train.epochs {
        let seed = epoch_seed(config.train.seed, epoch);
        let mut order: Vec<usize> = (0..data.train.len()).collect();
        SplitMix64::new(seed).shuffle(&mut order);

        let mut progress = Progress::new(&format!(
            "{activation} epoch {epoch}/{}",
            config.train.epochs
        ));
        let started = Instant::now();
        // The epoch's running sums: empty, or where a mid-epoch checkpoint left them.
        let mut loss_sum: Option<Tensor<1>> = None;
        let mut correct_sum: Option<Tensor<1, Int>> = None;
        let mut grad_norms = GradNormMeter::default();
        let mut seconds_before = 0.0;
        let mut first_step = 0;
        if let Some(done) = partial.take() {
            let loss = TensorData::new(vec![f32::from_bits(done.loss_sum_bits)], [1]);
            loss_sum = Some(Tensor::from_data(loss, &train_device));
            let correct = TensorData::new(vec![done.correct], [1]);
            correct_sum = Some(Tensor::from_data(correct, &train_device));
            grad_norms = GradNormMeter::from_bits(&done.grad_norm_sums_bits, done.grad_norm_count);
            seconds_before = done.seconds;
            first_step = done.steps_done;
        }
        for (step, indices) in order.chunks(batch_size).enumerate().skip(first_step) {
            let _ = train_device.flush();
            train_device.seed(step_seed(seed, step));
            let (images, labels) = data.train.batch(indices, &train_device);
            let logits = model.forward(images);
            let loss = loss_fn.forward(logits.clone(), labels.clone());
            let correct = logits
                .argmax(1)
                .reshape([indices.len()])
                .equal(labels)
                .int()
                .sum();
            let weighted = loss.clone().detach().mul_scalar(indices.len() as f64);
            loss_sum = Some(loss_sum.map_or(weighted.clone(), |s| s + weighted));
            correct_sum = Some(correct_sum.map_or(correct.clone(), |s| s + correct));

            let grads = GradientsParams::from_grads(loss.backward(), &model);
            if options.diagnostics && step % GRAD_NORM_EVERY == 0 {
                grad_norms.add(weight_grad_norms(&model, &grads));
            }
            let lr = learning_rate(config, (epoch - 1) * steps_per_epoch + step, total_steps);
            model = optim.step(lr, model, grads);

            if step % 50 == 0 {
                let value: f32 = loss.into_scalar();
                check_finite(value, epoch, step, config)?;
                if !options.quiet {
                    progress.update(
                        step as f64 / steps_per_epoch as f64,
                        &format!("loss {value:.4}"),
                    );
                }
            }
            stop::signal_point(epoch, step);
            // After the last step the epoch's own checkpoint follows, then the check below.
            if let Some(reason) = options.stop.requested()
                && step + 1 < steps_per_epoch
            {
                let (grad_norm_sums_bits, grad_norm_count) = grad_norms.to_bits();
                let loss_sum: f32 = loss_sum.expect("a step was taken").into_scalar();
                let correct: i64 = correct_sum.expect("a step was taken").into_scalar();
                let state = CheckpointState {
                    epochs_done: epoch - 1,
                    history,
                    train_seconds,
                    config: config.clone(),
                    diagnostics,
                    partial: Some(PartialEpoch {
                        steps_done: step + 1,
                        loss_sum_bits: loss_sum.to_bits(),
                        correct,
                        seconds: seconds_before + started.elapsed().as_secs_f64(),
                        grad_norm_sums_bits,
                        grad_norm_count,
                    }),
                };
                let checkpoint = checkpoint::write(&run, &model, &optim, &state)?;
                return Err(TrainError::Stopped {
                    reason,
                    position: state.position(),
                    run: run.dir().into(),
                    checkpoint,
                });
            }
        }
        let epoch_loss: f32 = loss_sum.expect("at least one batch").into_scalar();
        let epoch_loss = epoch_loss as f64 / data.train.len() as f64;
        check_finite(epoch_loss as f32, epoch, steps_per_epoch, config)?;
        let correct: i64 = correct_sum.expect("at least one batch").into_scalar();
        let seconds = seconds_before + started.elapsed().as_secs_f64();
        train_seconds += seconds;
        if !options.quiet {
            progress.finish(&format!("loss {epoch_loss:.4}"));
        }
        history.push(EpochRecord {
            epoch,
            split: SplitName::Train,
            loss: epoch_loss,
            accuracy: correct as f64 / data.train.len() as f64,
            seconds,
            images_per_second: data.train.len() as f64 / seconds,
        });

        let eval_model = model.valid();
        for (split, name) in [
            (&data.validation, SplitName::Validation),
            (&data.test, SplitName::Test),
        ] {
            if split.is_empty() {
                continue;
            }
            let started = Instant::now();
            let result = evaluate(&eval_model, split, &device);
            history.push(EpochRecord {
                epoch,
                split: name,
                loss: result.loss,
                accuracy: result.accuracy,
                seconds: started.elapsed().as_secs_f64(),
                images_per_second: split.len() as f64 / started.elapsed().as_secs_f64(),
            });
        }
        if !options.quiet {
            log_epoch(&history, epoch);
        }
        run.write_metrics(&history)?;
        if options.diagnostics {
            let (probe, _) = data.train.batch(&probe_indices, &device);
            let stats = probe_stats(&eval_model, probe);
            diagnostics.extend(epoch_records(
                epoch,
                &layer_names(&eval_model),
                &stats,
                &grad_norms.means(),
            ));
            run.write_diagnostics(&diagnostics)?;
        }
        let checkpoint = checkpoint::write(
            &run,
            &model,
            &optim,
            &CheckpointState {
                epochs_done: epoch,
                history: history.clone(),
                train_seconds,
                config: config.clone(),
                diagnostics: diagnostics.clone(),
                partial: None,
            },
        )?;
        if let Some(reason) = options.stop.requested()
            && epoch < config.train.epochs
        {
            return Err(TrainError::Stopped {
                reason,
                position: Position::after_epoch(epoch),
                run: run.dir().into(),
                checkpoint,
            });
        }
        if options.stop_after.is_some_and(|last| epoch >= last) && epoch < config.train.epochs {
            if !options.quiet {
                eprintln!(
                    "stopped after epoch {epoch} of {} as asked; continue with --resume",
                    config.train.epochs
                );
            }
            break;
        }
    }

    let final_model = model.valid();
    let test = evaluate(&final_model, &data.test, &device);
    let summary = Summary::new(
        config,
        options.backend,
        &final_model,
        &history,
        &test,
        train_seconds,
        data.train.len(),
    );
    // A stopped run has only its checkpoint: no summary.json means "not finished".
    let mut summary = summary;
    if summary.complete {
        run.write_final(config, &final_model, &mut summary)?;
    }
    Ok(summary)
}

/// Loads the data and trains.
pub fn train(config: &RunConfig, options: &TrainOptions) -> Result<Summary, TrainError> {
    // An output directory that cannot be written is refused before the data is read.
    RunDir::create(&options.out_dir)?;
    let data = load_data(config)?;
    if !options.quiet {
        eprintln!(
            "data: {} ({}); {} train, {} validation, {} test images; backend {}",
            data.located.dir.display(),
            data.located.how,
            data.train.len(),
            data.validation.len(),
            data.test.len(),
            options.backend
        );
    }
    train_on(config, &data, options)
}

fn check_finite(
    loss: f32,
    epoch: usize,
    step: usize,
    config: &RunConfig,
) -> Result<(), TrainError> {
    if loss.is_finite() {
        return Ok(());
    }
    Err(TrainError::Diverged {
        loss,
        epoch,
        step,
        activation: config.model.label(),
        lr: config.train.lr,
    })
}

fn log_epoch(history: &[EpochRecord], epoch: usize) {
    let parts: Vec<String> = history
        .iter()
        .filter(|r| r.epoch == epoch)
        .map(|r| {
            format!(
                "{} loss {:.4} acc {:.2}%",
                r.split,
                r.loss,
                100.0 * r.accuracy
            )
        })
        .collect();
    let speed = history
        .iter()
        .find(|r| r.epoch == epoch && r.split == SplitName::Train)
        .map(|r| format!(" ({:.0} img/s)", r.images_per_second))
        .unwrap_or_default();
    eprintln!("epoch {epoch}: {}{speed}", parts.join(", "));
}

/// Evaluates a saved model directory on the test split: the run's config and weights.
pub fn load_trained(dir: &Path, backend: Backend) -> Result<(RunConfig, Model), TrainError> {
    let run = RunDir::open(dir)?;
    let config = run.read_config()?;
    let device = backend.device();
    let model = config.model.init(&device);
    let model = run.load_model(model)?;
    Ok((config, model))
}

/// Test-set evaluation of a trained model.
pub fn evaluate_split(model: &Model, split: &Split, backend: Backend) -> Evaluation {
    evaluate(model, split, &backend.device())
}
