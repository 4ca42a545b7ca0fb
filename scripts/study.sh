#!/usr/bin/env bash
# A compare study run seed by seed on one machine, resumable across working sessions:
#
#   CONFIG=configs/compare_learnable.toml OUT=runs/compare_learnable \
#     COMMITTED=docs/compare_learnable/runs nohup nice -n 19 bash scripts/study.sh >> LOG 2>&1 &
#
# Every activation's run of seed 1 finishes before seed 2 starts, so a partial study already
# has paired comparisons. Stop it at any time (Ctrl-C, SIGTERM, the end of a session) and run
# the same command again: finished runs are skipped, the one in progress resumes from its last
# checkpoint (fmnist exits 75 when a signal stopped it; this script then stops too). Finished
# runs are committed to COMMITTED (each run's config, summary, metrics, diagnostics and model,
# without checkpoints), because a machine's runs/ may not outlive its session; they are copied
# into OUT first (never over a run already there), so the next session continues where the
# last one stopped. `fmnist report OUT --out DOCS` publishes the report.
#
# Environment: CONFIG (the compare config), OUT (the sweep directory), COMMITTED (where
# finished runs are committed; may not exist yet), FMNIST (the binary, default
# target/release/fmnist), SEEDS (default "1 2 3 4 5"), CORE (activations, as TOML strings, run
# on every seed before the others, e.g. '"relu", "prelu"'; default none).
# scripts/resnet_study.sh is this for the ResNet study, with relu, prelu, aprelu as its core.
set -euo pipefail
cd "$(dirname "$0")/.."

config=${CONFIG:?set CONFIG to a compare config, e.g. configs/compare_learnable.toml}
out=${OUT:?set OUT to the sweep directory, e.g. runs/compare_learnable}
committed=${COMMITTED:-}
fmnist=${FMNIST:-target/release/fmnist}
mkdir -p "$out"
if [ -n "$committed" ] && [ -d "$committed" ]; then
    for run in "$committed"/*/; do
        name=$(basename "$run")
        [ -e "$out/$name" ] || cp -r "$run" "$out/$name"
    done
fi
core=${CORE:-}
if [ -n "$core" ]; then
    for seed in ${SEEDS:-1 2 3 4 5}; do
        echo "=== seed $seed, $core ($(date -u +%FT%TZ))"
        "$fmnist" compare --config "$config" --set "compare.seeds=[$seed]" \
            --set "compare.activations=[$core]" --out "$out" --quiet
    done
fi
for seed in ${SEEDS:-1 2 3 4 5}; do
    echo "=== seed $seed ($(date -u +%FT%TZ))"
    "$fmnist" compare --config "$config" --set "compare.seeds=[$seed]" --out "$out" --quiet
done
echo "=== done ($(date -u +%FT%TZ))"
