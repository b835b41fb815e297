#!/usr/bin/env bash
# Continue VariBAD gridworld runs from iteration 1000 to 2000 (same config: lr/entropy stay at their final
# values after anneal_iterations=1000), then evaluate each on 2000 held-out trials (sampled and greedy).
# Usage: benchmarks/gridworld/extend.sh SEED [SEED ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-/tmp/vb/final}
OUT=benchmarks/gridworld/runs
for s in "$@"; do
  d="$RUNS/varibad-s$s"
  echo "seed $s extend start $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/timing.log"
  /usr/bin/time -v nice -n 10 .venv/bin/fastadapt train varibad-gridworld --seed "$s" --out "$d" --resume \
    --set train.iterations=2000 --quiet > "$OUT/varibad-s$s-2000.train.log" 2> "$OUT/varibad-s$s-2000.time.log"
  echo "seed $s extend end $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/timing.log"
  cp "$d/metrics.jsonl" "$OUT/varibad-s$s-2000.metrics.jsonl"
  nice -n 10 .venv/bin/fastadapt eval "$d" --json "$OUT/varibad-s$s-2000.eval.json" > /dev/null 2>&1
  nice -n 10 .venv/bin/fastadapt eval "$d" --set eval.greedy=true \
    --json "$OUT/varibad-s$s-2000.eval-greedy.json" > /dev/null 2>&1
done
