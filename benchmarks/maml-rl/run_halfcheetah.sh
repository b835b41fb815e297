#!/usr/bin/env bash
# HalfCheetah-Dir MAML-TRPO meta-training under a CPU budget (one in-process sampler, one thread, nice 10).
# Usage: benchmarks/maml-rl/run_halfcheetah.sh SEED [extra --set overrides...]
# Writes runs/halfcheetah-dir-s<SEED>/ (metrics.jsonl, checkpoints every 5 iterations, time-train.txt).
# The run is stopped by hand (kill of the fastadapt process) when the CPU budget is spent; the last
# checkpoint is then evaluated with eval_halfcheetah.sh.
set -euo pipefail
seed="$1"; shift
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$here/runs/halfcheetah-dir-s$seed"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
rm -rf "$out"; mkdir -p "$out.tmp"
uptime > "$out.tmp/load-start.txt"
/usr/bin/time -v -o "$out.tmp/time-train.txt" nice -n 10 \
  "$root/.venv/bin/fastadapt" train maml-trpo-halfcheetah-dir --seed "$seed" --out "$out" --quiet \
  --set algo.num_workers=0 --set algo.meta_batch=10 --set algo.fvp_second_order=true \
  --set train.iterations=150 --set train.checkpoint_every=5 "$@" || true
uptime > "$out.tmp/load-end.txt"
mv "$out.tmp"/* "$out"/ && rmdir "$out.tmp"
