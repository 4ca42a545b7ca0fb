//! `fmnist verify`.
use ::actlab_train::run::verify::verify;

use super::*;

/// Check run directories, or every run of a study, against the hashes the runs recorded.
#[derive(Args)]
pub struct VerifyArgs {
    /// Run directories, or study directories (every run inside is checked).
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// The study's compare config (a file or a shipped name): its planned runs that are not
    /// in the directory are listed as missing.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// `--set` overrides of that config, as given to `fmnist compare`.
    #[arg(long = "set", value_name = "KEY=VALUE", requires = "config")]
    pub sets: Vec<String>,
}

impl VerifyArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let planned: Option<Vec<String>> = match &self.config {
            Some(path) => Some(
                ::actlab_train::sweep::CompareConfig::load(path, &self.sets)?
                    .plan()
                    .into_iter()
                    .map(|run| run.dir_name)
                    .collect(),
            ),
            None => None,
        };
        let (mut total, mut bad) = (0, 0);
        for dir in &self.dirs {
            for verdict in verify(dir, planned.as_deref())? {
                total += 1;
                bad += usize::from(!verdict.health.is_intact());
                println!(
                    "{:<10} {}  ({})",
                    verdict.health.word(),
                    verdict.dir.display(),
                    verdict.health.detail()
                );
            }
        }
        if total == 0 {
            anyhow::bail!("no run directories found in {:?}", self.dirs);
        }
        if bad > 0 {
            anyhow::bail!(
                "{bad} of {total} run(s) are not intact: resume incomplete ones (`fmnist train \
                 --resume --out DIR`, or re-run the study), retrain damaged ones"
            );
        }
        println!("all {total} run(s) intact");
        Ok(())
    }
}
