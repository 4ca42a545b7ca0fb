//! `fmnist data`.
use super::*;

/// Where the data was found, checksums, counts per class.
#[derive(Args)]
pub struct DataArgs {
    /// Directory with the four IDX files.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Never download.
    #[arg(long)]
    pub offline: bool,
}

impl DataArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let Self { data_dir, offline } = self;
        let options = ::actlab_train::data::DataOptions {
            dir: data_dir,
            offline,
            ..Default::default()
        };
        let located = ::actlab_train::data::locate(&options)?;
        println!("found in {} ({})", located.dir.display(), located.how);
        for file in &FILES {
            let path = located.path(file);
            ::actlab_train::data::source::read_verified(&path, file, true)?;
            println!("  {}: sha256 verified ({})", file.name, path.display());
        }
        for (name, train) in [("train", true), ("test", false)] {
            let split = ::actlab_train::data::dataset::read_split(&located, train, false)?;
            println!("\n{name}: {} images", split.len());
            for (class, count) in CLASS_NAMES.iter().zip(split.class_counts()) {
                println!("  {class:<12} {count:>6}");
            }
        }
        Ok(())
    }
}
