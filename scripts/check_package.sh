#!/usr/bin/env bash
# What a user of the published crates gets: package `activations` and `models` as crates.io
# would (`cargo package`), unpack the .crate files into a scratch directory outside the
# workspace, and build and run each crate's README example in a scratch crate that depends on
# them by path, with only the dependencies the READMEs name. Run by .ci/run; takes a few
# minutes (it shares the workspace's target directory, so Burn is not rebuilt).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

cargo package -p activations -p models --no-verify --allow-dirty --quiet
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for crate in activations models; do
    tar -xzf "target/package/$crate-0.1.0.crate" -C "$scratch"
done

# The README examples, as a program: the first ```rust block of each crate's README.
mkdir -p "$scratch/user/src"
readme_example() {
    awk '/^```rust/ { inside = 1; next } /^```/ { if (inside) exit } inside' "$1"
}
{
    echo 'fn activations_readme() {'
    readme_example "$scratch/activations-0.1.0/README.md"
    echo '}'
    echo 'fn models_readme() {'
    readme_example "$scratch/models-0.1.0/README.md"
    echo '}'
    echo 'fn main() {'
    echo '    activations_readme();'
    echo '    models_readme();'
    echo '    println!("the README examples ran against the packaged crates");'
    echo '}'
} > "$scratch/user/src/main.rs"

cat > "$scratch/user/Cargo.toml" <<TOML
[package]
name = "scratch-user"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
burn = "=0.22.1"
activations = { path = "../activations-0.1.0" }
models = { path = "../models-0.1.0" }
toml = "0.8"

# As if both were on crates.io: models' dependency on activations resolves to the package.
[patch.crates-io]
activations = { path = "../activations-0.1.0" }

[workspace]

[profile.dev.package."*"]
opt-level = 3
debug = false
TOML
# The workspace's lock file: the same dependency versions, so the shared target directory's
# Burn artifacts are reused.
cp Cargo.lock "$scratch/user/Cargo.lock"
cd "$scratch/user"
CARGO_TARGET_DIR="$root/target" cargo run --quiet
