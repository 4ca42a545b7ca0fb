//! `fmnist configs`.
use ::actlab_train::configs::{SHIPPED, ShippedConfig, shipped_names};

use super::*;

/// The configs shipped inside the binary: list them, or print one to edit.
#[derive(Args)]
pub struct ConfigsArgs {
    #[command(subcommand)]
    pub action: Option<ConfigsAction>,
}

#[derive(Subcommand)]
pub enum ConfigsAction {
    /// Every shipped config with what it is for (the default action).
    List,
    /// Print a shipped config, comments included: `fmnist configs show prelu > my.toml`.
    Show {
        /// Its name, as `fmnist configs` lists it.
        name: String,
    },
}

impl ConfigsArgs {
    pub fn run(self) -> anyhow::Result<()> {
        match self.action.unwrap_or(ConfigsAction::List) {
            ConfigsAction::List => {
                println!("{:<18} {:<8} description", "name", "command");
                for config in SHIPPED {
                    let command = if config.is_compare() {
                        "compare"
                    } else {
                        "train"
                    };
                    println!(
                        "{:<18} {:<8} {}",
                        config.name,
                        command,
                        config.description()
                    );
                }
                println!(
                    "\nUse one by name (fmnist train --config prelu), or write it out to edit: \
                     fmnist configs show prelu > my.toml; fmnist train --config my.toml"
                );
                Ok(())
            }
            ConfigsAction::Show { name } => match ShippedConfig::find(&name) {
                Some(config) => {
                    print!("{}", config.text);
                    Ok(())
                }
                None => anyhow::bail!(
                    "no shipped config is named `{name}`; the shipped configs are: {}",
                    shipped_names()
                ),
            },
        }
    }
}
