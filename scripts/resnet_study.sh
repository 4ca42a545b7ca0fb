#!/usr/bin/env bash
# The ResNet study of issue 24 (configs/compare_resnet.toml) on one machine, seed by seed, with
# scripts/study.sh: relu, prelu and aprelu on every seed first (the question that matters most),
# then every activation of the config per seed, so a partial study already has paired
# comparisons. Stop it at any time (Ctrl-C, SIGTERM, the end of a working session) and run the
# same command again: finished runs are skipped, the one in progress resumes from its last
# checkpoint (fmnist exits 75 when a signal stopped it; this script then stops too).
#
#   nohup nice -n 19 bash scripts/resnet_study.sh > runs/compare_resnet_full.log 2>&1 &
#
# Environment: FMNIST (the binary, default target/release/fmnist), OUT (default
# runs/compare_resnet_full), SEEDS (default "1 2 3 4 5"), CORE (the activations run on every
# seed before the others, default relu, prelu, aprelu; CORE="" skips that pass). The report is
# rewritten in OUT after every seed; `fmnist report OUT --out docs/compare_resnet` publishes it.
#
# Finished runs are committed to docs/compare_resnet/runs/ (each run's config, summary,
# metrics, diagnostics and model, without its checkpoints) as they complete, because a working
# machine's runs/ does not outlive its session; they are copied into OUT first (never over a
# run already there), so the next session continues where the last one stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
export CONFIG=configs/compare_resnet.toml
export OUT=${OUT:-runs/compare_resnet_full}
export COMMITTED=docs/compare_resnet/runs
export CORE=${CORE-'"relu", "prelu", "aprelu"'}
exec bash scripts/study.sh
