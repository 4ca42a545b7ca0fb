//! `fmnist report`.
use super::*;

/// Merge finished runs from one or more sweep directories into one report.
#[derive(Args)]
pub struct ReportArgs {
    /// Sweep directories (written by `fmnist compare`, possibly by several shards).
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Where to write the report (default: the first directory).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The reference of the paired comparisons: an activation label in the runs.
    #[arg(long, default_value = "relu")]
    pub baseline: String,
}

impl ReportArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let Self {
            dirs,
            out,
            baseline,
        } = self;
        let runs = ::actlab_train::report::collect_runs(&dirs)?;
        let out = out.unwrap_or_else(|| dirs[0].clone());
        let backends: Vec<String> = runs.iter().map(|r| r.summary.backend.clone()).collect();
        let note = match backends.first() {
            Some(first) if backends.iter().all(|b| b == first) => {
                format!("Backend: {first}.")
            }
            _ => "Runs come from several backends: compare speeds with care.".into(),
        };
        ::actlab_train::report::write_report(&runs, &out, &note, &baseline)?;
        println!(
            "{} finished runs from {} director{}; report: {}",
            runs.len(),
            dirs.len(),
            if dirs.len() == 1 { "y" } else { "ies" },
            out.join("report.md").display()
        );
        Ok(())
    }
}
