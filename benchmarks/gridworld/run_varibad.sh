#!/usr/bin/env bash
# Train VariBAD on the gridworld for seeds 0 1 2 one after the other (one job, nice 10, 1 torch thread),
# then evaluate each run on 2000 held-out trials. Run dirs (with checkpoints) go to $RUNS (default /tmp/vb/final);
# metrics, eval JSON and timing logs are copied to benchmarks/gridworld/runs/.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-/tmp/vb/final}
OUT=benchmarks/gridworld/runs
mkdir -p "$RUNS" "$OUT"
for s in ${SEEDS:-0 1 2}; do
  d="$RUNS/varibad-s$s"
  echo "seed $s start $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/timing.log"
  /usr/bin/time -v nice -n 10 .venv/bin/fastadapt train varibad-gridworld --seed "$s" --out "$d" --quiet \
    > "$OUT/varibad-s$s.train.log" 2> "$OUT/varibad-s$s.time.log"
  echo "seed $s end $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/timing.log"
  cp "$d/metrics.jsonl" "$OUT/varibad-s$s.metrics.jsonl"
  cp "$d/config.yaml" "$OUT/varibad-s$s.config.yaml"
  nice -n 10 .venv/bin/fastadapt eval "$d" --json "$OUT/varibad-s$s.eval.json" > /dev/null 2>&1 || true
done
