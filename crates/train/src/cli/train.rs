//! `fmnist train`.
use super::*;

/// Train a model as a config file says; writes a run directory.
///
/// SIGTERM or Ctrl-C stops it after the current step with a checkpoint there, and exit status
/// 75; `--resume` then continues to the very results of an uninterrupted run. A second signal
/// ends it at once (losing nothing already checkpointed).
#[derive(Args)]
pub struct TrainArgs {
    /// The run config: a TOML file, or the name of a shipped config (`fmnist configs` lists
    /// them; default: the reference CNN).
    #[arg(long, default_value = "default")]
    pub config: PathBuf,
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Override a config key, e.g. --set model.activation=gelu --set train.epochs=3.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// The run directory (default: runs/<activation>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue from the run directory's last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Stop after this epoch, keeping the checkpoint (continue later with --resume).
    #[arg(long, value_name = "EPOCH")]
    pub stop_after: Option<usize>,
    /// Directory with the four IDX files (overrides data.dir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Never download the data.
    #[arg(long)]
    pub offline: bool,
    /// Skip the SHA-256 check of the data files.
    #[arg(long)]
    pub no_verify: bool,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the run's summary as one JSON object on stdout (the run directory, and the
    /// fields of its summary.json), instead of the sentence; progress stays on stderr.
    #[arg(long)]
    pub json: bool,
}

impl TrainArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let Self {
            config,
            backend,
            mut sets,
            out,
            resume,
            stop_after,
            data_dir,
            offline,
            no_verify,
            quiet,
            json,
        } = self;
        let backend = backend.resolve()?;
        sets.extend(data_dir_override(data_dir));
        if offline {
            sets.push("data.offline=true".into());
        }
        if no_verify {
            sets.push("data.verify=false".into());
        }
        let config = RunConfig::load(&config, &sets)?;
        let out = out.unwrap_or_else(|| PathBuf::from("runs").join(config.model.label()));
        let summary = ::actlab_train::train(
            &config,
            &TrainOptions {
                backend,
                out_dir: out.clone(),
                resume,
                quiet,
                stop_after,
                diagnostics: false,
                stop: ::actlab_train::run::StopRequest::on_signals()?,
            },
        )?;
        if json {
            #[derive(serde::Serialize)]
            struct Output<'a> {
                run_dir: &'a std::path::Path,
                #[serde(flatten)]
                summary: &'a ::actlab_train::run::Summary,
            }
            return print_json(&Output {
                run_dir: &out,
                summary: &summary,
            });
        }
        if !summary.complete {
            println!(
                "stopped after epoch {} with test accuracy {:.2}%; the checkpoint is in {}: \
                 continue with the same command and --resume",
                summary.epochs,
                100.0 * summary.test_accuracy,
                out.display()
            );
            return Ok(());
        }
        println!(
            "{}: test accuracy {:.2}% (loss {:.4}) after {} epoch{} on {}, {:.0} training \
             images/s; run directory {}",
            summary.activation,
            100.0 * summary.test_accuracy,
            summary.test_loss,
            summary.epochs,
            if summary.epochs == 1 { "" } else { "s" },
            summary.backend,
            summary.train_images_per_second,
            out.display()
        );
        Ok(())
    }
}
