#!/usr/bin/env bash
# HalfCheetah-Dir/-Vel MAML-TRPO meta-training under a CPU budget (one in-process sampler, one thread).
# Usage: [TASK=dir|vel] benchmarks/maml-rl/run_halfcheetah.sh SEED [extra --set overrides...]
# Writes runs/halfcheetah-<TASK>-s<SEED>/ (metrics.jsonl, checkpoints every 10 iterations, time-train.txt,
# load-start/end.txt, train-stdout.txt). train.iterations is deliberately larger than the budget allows: the
# run is stopped by hand (kill of the fastadapt process right after a checkpoint) when the wall/CPU budget is
# spent; the last checkpoint is then evaluated with eval_halfcheetah.sh.
# Session 3 (2026-12-03): run un-niced on one dedicated core (the other core ran another helper's job);
# session 2's run used `nice -n 10`, meta_batch 10 and got ~7 % of a core.
set -euo pipefail
seed="$1"; shift
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
task="${TASK:-dir}"   # TASK=vel for HalfCheetah-Vel (session 5)
out="$here/runs/halfcheetah-$task-s$seed"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
rm -rf "$out" "$out.tmp"; mkdir -p "$out.tmp"
uptime > "$out.tmp/load-start.txt"
/usr/bin/time -v -o "$out.tmp/time-train.txt" \
  "$root/.venv/bin/fastadapt" train "maml-trpo-halfcheetah-$task" --seed "$seed" --out "$out" --quiet \
  --set algo.num_workers=0 --set algo.meta_batch=10 --set algo.fast_batch=20 \
  --set algo.fvp_second_order=true --set train.threads=1 --set train.tensorboard=false \
  --set train.iterations=1000 --set train.checkpoint_every=10 --set train.keep_checkpoints=100 \
  "$@" > "$out.tmp/train-stdout.txt" 2>&1 || true
uptime > "$out.tmp/load-end.txt"
mv "$out.tmp"/* "$out"/ && rmdir "$out.tmp"
