//! `fmnist activations`.
use super::*;

/// Every activation in the registry with its parameters and defaults.
pub fn run() -> anyhow::Result<()> {
    const WIDTH: usize = 44;
    println!(
        "{:<12} {:<WIDTH$} description",
        "kind", "parameters (defaults)"
    );
    for config in ActivationConfig::catalog() {
        let parameters = parameters(&config);
        if parameters.chars().count() > WIDTH {
            // A long parameter list (PAU's) gets its own line; the description stays in its
            // column below it.
            println!("{:<12} {parameters}", config.name());
            println!("{:<12} {:<WIDTH$} {}", "", "", config.description());
        } else {
            println!(
                "{:<12} {:<WIDTH$} {}",
                config.name(),
                parameters,
                config.description()
            );
        }
    }
    println!(
        "\nIn a config: activation = \"gelu\", or a table: \
         activation = {{ kind = \"leaky_relu\", negative_slope = 0.1 }}"
    );
    Ok(())
}

/// `negative_slope = 0.01, ...` from the config's own serialisation, so the listing can never
/// disagree with what the parser accepts.
fn parameters(config: &ActivationConfig) -> String {
    let value = toml::Value::try_from(config).expect("activation configs serialise");
    let table = value.as_table().expect("configs serialise to tables");
    let parts: Vec<String> = table
        .iter()
        .filter(|(key, _)| key.as_str() != "kind")
        .map(|(key, value)| format!("{key} = {value}"))
        .collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}
