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
# shard skips finished runs and continues interrupted ones. Three minutes before the time
# limit SLURM sends this shell SIGUSR1 (--signal below), which asks fmnist to stop after its
# current step with a checkpoint there; at preemption SLURM sends every process SIGTERM, which
# does the same. fmnist then exits 75 and the task requeues itself (scontrol requeue), to
# continue at that step. docs/cluster.md has the details.
#
#SBATCH --job-name=fmnist-compare
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --time=04:00:00
#SBATCH --requeue
#SBATCH --signal=B:USR1@180
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
        "$FMNIST" compare --config "$CONFIG" --out "$OUT" --backend "$BACKEND" \
            --shard "$((index - first))/$count" --quiet "$@" &
        fmnist_pid=$!
        # USR1 (the time limit is near): ask fmnist to stop. TERM/INT reach fmnist directly
        # (SLURM signals every process of the job); forwarding them would make a second
        # signal, which ends fmnist at once, so this shell only waits.
        trap 'kill -TERM "$fmnist_pid" 2>/dev/null || true' USR1
        trap ':' TERM INT
        status=0
        wait "$fmnist_pid" || status=$?
        # A trapped signal interrupts `wait`: wait again until fmnist itself has exited.
        while kill -0 "$fmnist_pid" 2>/dev/null; do
            status=0
            wait "$fmnist_pid" || status=$?
        done
        if [ "$status" -eq 75 ]; then
            # Stopped with a checkpoint (see the header): run this task again from there.
            echo "fmnist stopped with a checkpoint; requeueing job ${SLURM_JOB_ID:-?}" >&2
            scontrol requeue "${SLURM_JOB_ID:?not in a SLURM job}"
        fi
        exit "$status"
        ;;
    merge)
        exec "$FMNIST" report "$OUT"
        ;;
esac
