#!/usr/bin/env bash
# 2D navigation: meta-train with a shipped config, then run the MAML meta-test protocol (`fastadapt eval`),
# one process per (config, seed), both at nice 10. Usage: run_nav2d.sh CONFIG SEED [EVAL_KEY=VALUE ...]
# e.g.  benchmarks/maml-rl/run_nav2d.sh maml-trpo-navigation2d 2
#       benchmarks/maml-rl/run_nav2d.sh maml-trpo-navigation2d 0 'eval.baselines=[oracle]'
# Wall time AND CPU time (user+sys, from /usr/bin/time) are recorded in runs/<CONFIG>-s<SEED>/time-*.txt.
set -euo pipefail
cfg="$1"; seed="$2"; shift 2
eval_set=(); for kv in "$@"; do eval_set+=(--set "$kv"); done
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$here/runs/$cfg-s$seed"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
rm -rf "$out"; mkdir -p "$here/runs"
uptime > "$here/runs/$cfg-s$seed.load-start.txt"
/usr/bin/time -v -o "$here/runs/$cfg-s$seed.time-train.txt" \
  nice -n 10 "$root/.venv/bin/fastadapt" train "$cfg" --seed "$seed" --out "$out" --quiet
uptime > "$out/load-after-train.txt"
mv "$here/runs/$cfg-s$seed.load-start.txt" "$out/load-start.txt"
mv "$here/runs/$cfg-s$seed.time-train.txt" "$out/time-train.txt"
/usr/bin/time -v -o "$out/time-eval.txt" \
  nice -n 10 "$root/.venv/bin/fastadapt" eval "$out" --json "$out/eval-rows.json" "${eval_set[@]}"
uptime > "$out/load-after-eval.txt"
