//! `fmnist compare`.
use super::*;

/// Train every activation × seed of a compare config, then write the report.
///
/// SIGTERM or Ctrl-C stops the run in progress after its current step with a checkpoint
/// there, and exit status 75; the same command then continues the study.
#[derive(Args)]
pub struct CompareArgs {
    /// The compare config: a TOML file (a run config plus [compare] activations and seeds), or
    /// the name of a shipped one (`fmnist configs` lists them).
    #[arg(long, default_value = "compare")]
    pub config: PathBuf,
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Override a config key, e.g. --set compare.seeds=[1] --set train.epochs=1.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// The sweep directory: one subdirectory per run, and the report.
    #[arg(long, default_value = "runs/compare")]
    pub out: PathBuf,
    /// Run only every N-th run starting at I (0-based), e.g. $SLURM_ARRAY_TASK_ID/N.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<::actlab_train::sweep::Shard>,
    /// Directory with the four IDX files (overrides data.dir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

impl CompareArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let Self {
            config,
            backend,
            mut sets,
            out,
            shard,
            data_dir,
            quiet,
        } = self;
        let backend = backend.resolve()?;
        sets.extend(data_dir_override(data_dir));
        let config = ::actlab_train::sweep::CompareConfig::load(&config, &sets)?;
        let shard = shard.unwrap_or_default();
        let runs = config.plan();
        let mine = runs.iter().filter(|r| shard.takes(r.index)).count();
        if !quiet {
            eprintln!(
                "{} runs ({} activations × {} seeds), {} of them in this shard; {} epochs each; \
                 output {}",
                runs.len(),
                config.compare.activations.len(),
                config.compare.seeds.len(),
                mine,
                config.base.train.epochs,
                out.display()
            );
        }
        let statuses = ::actlab_train::sweep::run_sweep(
            &config,
            &::actlab_train::sweep::CompareOptions {
                backend,
                out_dir: out.clone(),
                shard,
                quiet,
                stop: ::actlab_train::run::StopRequest::on_signals()?,
            },
        )
        .map_err(|error| match error {
            stopped @ ::actlab_train::run::TrainError::Stopped { .. } => {
                anyhow::Error::new(stopped).context(
                    "the study stopped; run the same fmnist compare command again to continue \
                     (finished runs are skipped, this one resumes from its checkpoint)",
                )
            }
            other => other.into(),
        })?;
        let mut finished = ::actlab_train::report::collect_runs(std::slice::from_ref(&out))?;
        inspect_learnable(&mut finished, &config.base, backend, quiet)?;
        // The report takes every finished run in the directory; the count is of this config's.
        let planned_finished = statuses
            .iter()
            .filter(|(run, _)| finished.iter().any(|f| f.dir.ends_with(&run.dir_name)))
            .count();
        let others = finished.len() - planned_finished;
        let pending = statuses.len() - planned_finished;
        ::actlab_train::report::write_report(
            &finished,
            &out,
            &backend_note(backend),
            &config.compare.baseline,
        )?;
        println!(
            "{} of {} runs finished{}; report: {}{}",
            planned_finished,
            statuses.len(),
            if others > 0 {
                format!(" (the report also covers {others} more finished run(s) in the directory)")
            } else {
                String::new()
            },
            out.join("report.md").display(),
            if pending > 0 {
                format!(
                    " ({pending} runs belong to other shards: merge with `fmnist report DIR...`)"
                )
            } else {
                String::new()
            }
        );
        Ok(())
    }
}

/// Inspects every finished run whose model has a PReLU or APReLU slot and no `inspect/` yet
/// (what its slopes became, for the report), on the sweep's test split, and keeps the result
/// in the run for the report.
fn inspect_learnable(
    runs: &mut [::actlab_train::report::FinishedRun],
    base: &RunConfig,
    backend: Backend,
    quiet: bool,
) -> anyhow::Result<()> {
    use ::actlab_train::run::RunDir;
    let mut data = None;
    // A run published without its weights (see report::collect) has nothing to inspect.
    for run in runs
        .iter_mut()
        .filter(|run| run.inspection.is_none() && RunDir::at(&run.dir).model_path().exists())
    {
        // The slots from the config alone; the weights are read only for learnable runs.
        let learnable = run
            .config
            .model
            .init(&backend.device())
            .slot_activations()
            .into_iter()
            // A slot with trainable parameters: PReLU, APReLU, ACON, DyReLU, FReLU, a learned β.
            .any(|a| ::burn::module::Module::num_params(a) > 0);
        if !learnable {
            continue;
        }
        let (_, model) = ::actlab_train::run::load_trained(&run.dir, backend)?;
        if data.is_none() {
            data = Some(::actlab_train::run::load_data(base)?);
        }
        let test = &data.as_ref().expect("loaded above").test;
        let inspection = ::actlab_train::inspect::inspect(&model, test, backend);
        ::actlab_train::report::write_inspection(
            &inspection,
            &run.dir,
            &format!("{} with {}", run.config.model, run.label),
            &RunDir::at(&run.dir).inspect_dir(),
        )?;
        run.inspection = Some(inspection);
        if !quiet {
            eprintln!("inspected {}", run.dir.display());
        }
    }
    Ok(())
}
