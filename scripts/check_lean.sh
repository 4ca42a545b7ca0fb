#!/usr/bin/env bash
# The train crate without its `cli` feature (as a library user takes it for the data set) must
# not pull in the CLI's crates: flags, error rendering, plots, fonts, PNG decoding.
set -euo pipefail
cd "$(dirname "$0")/.."
cli_only='^(clap|anyhow|plotters|dejavu|png) '
tree=$(cargo tree -p actlab-train --no-default-features --features flex,download -e normal --prefix none)
found=$(grep -E "$cli_only" <<<"$tree" | sort -u || true)
if [ -n "$found" ]; then
    echo "train without the cli feature depends on the CLI's crates:" >&2
    echo "$found" >&2
    exit 1
fi
echo "train without cli: none of clap, anyhow, plotters, dejavu, png"
