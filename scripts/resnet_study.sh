#!/usr/bin/env bash
# The ResNet study of issue 24 (configs/compare_resnet.toml) on one machine, seed by seed: every
# activation's run of seed 1 finishes before seed 2 starts, so a partial study already has
# paired comparisons. Stop it at any time (Ctrl-C, SIGTERM, the end of a working session) and run
# the same command again: finished runs are skipped, the one in progress resumes from its last
# checkpoint (fmnist exits 75 when a signal stopped it; this script then stops too).
#
#   nohup nice -n 19 bash scripts/resnet_study.sh > runs/compare_resnet_full.log 2>&1 &
#
# Environment: FMNIST (the binary, default target/release/fmnist), OUT (default
# runs/compare_resnet_full), SEEDS (default "1 2 3 4 5"), CORE (the activations run on every seed
# before the others, default relu, prelu, aprelu). The report is rewritten in OUT after
# every seed; `fmnist report OUT --out docs/compare_resnet` publishes it.
#
# Finished runs are committed to docs/compare_resnet/runs/ (each run's config, summary,
# metrics, diagnostics, inspection and model, without its checkpoints) as they complete, because
# a working machine's runs/ does not outlive its session; they are copied into OUT first
# (never over a run already there), so the next session continues where the last one stopped.
set -euo pipefail
cd "$(dirname "$0")/.."

fmnist=${FMNIST:-target/release/fmnist}
out=${OUT:-runs/compare_resnet_full}
mkdir -p "$out"
if [ -d docs/compare_resnet/runs ]; then
    for run in docs/compare_resnet/runs/*/; do
        name=$(basename "$run")
        [ -e "$out/$name" ] || cp -r "$run" "$out/$name"
    done
fi
# The question that matters most first: relu, prelu and aprelu on every seed, then the others
# (CORE="" skips that pass).
core=${CORE-'"relu", "prelu", "aprelu"'}
if [ -n "$core" ]; then
    for seed in ${SEEDS:-1 2 3 4 5}; do
        echo "=== seed $seed, $core ($(date -u +%FT%TZ))"
        "$fmnist" compare --config configs/compare_resnet.toml --set "compare.seeds=[$seed]" \
            --set "compare.activations=[$core]" --out "$out" --quiet
    done
fi
for seed in ${SEEDS:-1 2 3 4 5}; do
    echo "=== seed $seed ($(date -u +%FT%TZ))"
    "$fmnist" compare --config configs/compare_resnet.toml --set "compare.seeds=[$seed]" \
        --out "$out" --quiet
done
echo "=== done ($(date -u +%FT%TZ))"
