#!/usr/bin/env bash
# What a user of the published crates gets: package actlab-activations, actlab-models and
# actlab-train as crates.io would (`cargo package`: only the files the packages carry, path
# dependencies replaced by versions), unpack the .crate files into a scratch directory outside
# the workspace, then
#   - build and run the activations and models README examples in a scratch crate that
#     depends on the packages as crates.io would resolve them, with only the dependencies the
#     READMEs name;
#   - build the packaged actlab-train's `fmnist` and run it from the scratch directory: the
#     shipped configs must be inside the package and the binary.
# Run by .ci/run. It shares the workspace's target directory and lock file, and enables the
# same Burn features as the workspace's test build, so Burn is not compiled again.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

cargo package -p actlab-activations -p actlab-models -p actlab-train --no-verify --allow-dirty --quiet
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for crate in activations models train; do
    tar -xzf "target/package/actlab-$crate-$version.crate" -C "$scratch"
done
# The packages carry their licences, changelog and (train) the shipped configs.
for crate in activations models train; do
    for file in LICENSE-MIT LICENSE-APACHE CHANGELOG.md README.md; do
        test -s "$scratch/actlab-$crate-$version/$file" || {
            echo "actlab-$crate's package lacks $file" >&2
            exit 1
        }
    done
done
test -s "$scratch/actlab-train-$version/configs/default.toml"

# The README examples, as a program: the first ```rust block of each crate's README.
mkdir -p "$scratch/user/src"
readme_example() {
    awk '/^```rust/ { inside = 1; next } /^```/ { if (inside) exit } inside' "$1"
}
{
    echo 'fn activations_readme() {'
    readme_example "$scratch/actlab-activations-$version/README.md"
    echo '}'
    echo 'fn models_readme() {'
    readme_example "$scratch/actlab-models-$version/README.md"
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
# The READMEs' dependencies, resolved to the packages below. Burn with the features the
# workspace's test build enables (its default features would pull in others), so the shared
# target directory's Burn is reused instead of compiled again with another feature set.
burn = { version = "0.22.1", default-features = false, features = ["std", "autodiff", "extension", "flex", "simd", "rayon", "ndarray", "wgpu", "optim", "dataset", "safetensors", "train"] }
actlab-activations = "$version"
actlab-models = { version = "$version", features = ["learner"] }
actlab-train = "$version"
toml = "0.8"

# As if the three were on crates.io.
[patch.crates-io]
actlab-activations = { path = "../actlab-activations-$version" }
actlab-models = { path = "../actlab-models-$version" }
actlab-train = { path = "../actlab-train-$version" }

[workspace]

[profile.dev.package."*"]
opt-level = 3
debug = false
TOML
# The workspace's lock file: the same dependency versions, so the shared target directory's
# Burn artifacts are reused.
cp Cargo.lock "$scratch/user/Cargo.lock"
cd "$scratch/user"
export CARGO_TARGET_DIR="$root/target"
cargo run --quiet --bin scratch-user

# The packaged binary, run far from the checkout.
cargo build --quiet -p actlab-train --bin fmnist
mkdir -p "$scratch/elsewhere"
cd "$scratch/elsewhere"
# Captured first: `fmnist ... | grep -q` would let grep exit early and fmnist die of SIGPIPE,
# which pipefail turns into a failure.
listed=$("$root/target/debug/fmnist" configs)
grep -q '^compare_cnn ' <<<"$listed"
shown=$("$root/target/debug/fmnist" configs show prelu)
grep -q 'kind = "prelu"' <<<"$shown"
echo "the packaged fmnist lists and prints its shipped configs from $scratch/elsewhere"
