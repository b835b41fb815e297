#!/usr/bin/env bash
# Train RL² on the gridworld with the SHIPPED config (rl2-gridworld.yaml) for seeds 0 1 2 one after the other
# (one job, nice 10, 1 torch thread), then evaluate each run on 2000 held-out trials (`fastadapt eval`: one row
# per episode + the trial total). Run dirs (with checkpoints) go to $RUNS (default /tmp/rl2g/final); metrics,
# config, eval JSON and timing logs are copied to benchmarks/gridworld/rl2_logs/ ("runs/" is git-ignored).
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
RUNS=${RUNS:-/tmp/rl2g/final}
OUT=benchmarks/gridworld/rl2_logs
mkdir -p "$RUNS" "$OUT"
for s in ${SEEDS:-0 1 2}; do
  d="$RUNS/rl2-s$s"
  if [ "${SKIP_TRAIN:-0}" != 1 ]; then
    echo "seed $s train start $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/timing.log"
    /usr/bin/time -v nice -n 10 .venv/bin/fastadapt train rl2-gridworld --seed "$s" --out "$d" --quiet \
      --set train.threads=1 > "$OUT/rl2-s$s.train.log" 2> "$OUT/rl2-s$s.time.log"
    echo "seed $s train end $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/timing.log"
    cp "$d/metrics.jsonl" "$OUT/rl2-s$s.metrics.jsonl"
    cp "$d/config.yaml" "$OUT/rl2-s$s.config.yaml"
  fi
  if [ "${SKIP_EVAL:-0}" != 1 ]; then
    for g in false true; do
      tag=$([ "$g" = true ] && echo eval-greedy || echo eval)
      /usr/bin/time -v nice -n 10 .venv/bin/fastadapt eval "$d" --set eval.greedy=$g \
        --json "$OUT/rl2-s$s.$tag.json" > "$OUT/rl2-s$s.$tag.log" 2> "$OUT/rl2-s$s.$tag.time.log"
    done
  fi
done
