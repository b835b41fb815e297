#!/usr/bin/env bash
# SNAIL (Mishra et al. 2018) on Bernoulli bandits with the shipped snail-bandit config, one thread.
# Usage: benchmarks/snail/run_snail.sh SEED [extra --set overrides...]
# Writes benchmarks/snail/runs/snail-bandit-s<SEED>/ (run dir, eval.json, time-train.txt, time-eval.txt, load).
set -euo pipefail
seed="$1"; shift
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$here/runs/snail-bandit-s$seed"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
rm -rf "$out" "$out.tmp"; mkdir -p "$out.tmp"
uptime > "$out.tmp/load-start.txt"
/usr/bin/time -v -o "$out.tmp/time-train.txt" "$root/.venv/bin/fastadapt" train snail-bandit --seed "$seed" \
  --out "$out" --quiet --set train.threads=1 "$@"
/usr/bin/time -v -o "$out.tmp/time-eval.txt" "$root/.venv/bin/fastadapt" eval "$out" --json "$out.tmp/eval-rows.json"
uptime > "$out.tmp/load-end.txt"
mv "$out.tmp"/* "$out"/ && rmdir "$out.tmp"
