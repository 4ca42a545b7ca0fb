#!/usr/bin/env bash
# A `fmnist compare` study as a SLURM job array: each array task trains one shard of the runs
# (`--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT`) into one shared output directory,
# and a last job merges every finished run into one report with `fmnist report`.
#
#   sbatch --array=0-7 scripts/slurm_compare.sh                 # 8 shards
#   sbatch --dependency=afterany:JOBID scripts/slurm_compare.sh merge
#
# or both at once: `scripts/slurm_compare.sh submit 8`. Settings come from the environment
# (sbatch passes it on): FMNIST (the binary, default `fmnist` on PATH), CONFIG (a shipped
# config's name or a file, default compare_cnn), OUT (default runs/$CONFIG), BACKEND (default
# flex). Arguments after the mode go to `fmnist compare` unchanged (`--set train.epochs=3`).
# A preempted or requeued task resumes its runs from their last checkpoints: re-running a
# shard skips finished runs and continues interrupted ones. docs/cluster.md has the details.
#
#SBATCH --job-name=fmnist-compare
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --time=04:00:00
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=fmnist-compare-%A_%a.log
set -euo pipefail

FMNIST=${FMNIST:-fmnist}
CONFIG=${CONFIG:-compare_cnn}
OUT=${OUT:-runs/$(basename "${CONFIG%.toml}")}
BACKEND=${BACKEND:-flex}

mode=shard
case "${1:-}" in
    merge | submit) mode=$1; shift ;;
esac

case $mode in
    submit)
        shards=${1:?usage: slurm_compare.sh submit SHARDS [fmnist compare args...]}
        shift
        array=$(sbatch --parsable --array="0-$((shards - 1))" "$0" "$@")
        sbatch --dependency="afterany:${array%%;*}" "$0" merge
        ;;
    shard)
        index=${SLURM_ARRAY_TASK_ID:?not in a SLURM array job: submit with sbatch --array=0-N}
        count=${SLURM_ARRAY_TASK_COUNT:?not in a SLURM array job}
        # Array indices may start above 0 (--array=1-8): shards count from the lowest.
        first=${SLURM_ARRAY_TASK_MIN:-0}
        exec "$FMNIST" compare --config "$CONFIG" --out "$OUT" --backend "$BACKEND" \
            --shard "$((index - first))/$count" --quiet "$@"
        ;;
    merge)
        exec "$FMNIST" report "$OUT"
        ;;
esac
