#!/usr/bin/env bash
# MANN and Meta Networks: untrained baseline vs trained, digits and Omniglot (minimal splits), seed 0.
# Usage (from the repository root): nice -n 10 bash benchmarks/mann-metanet/run.sh [configs...]
set -u
cd "$(dirname "$0")/../.."
R=benchmarks/mann-metanet/results
DATA=${DATA:-/work/shared/data/omniglot}
RUNS=${RUNS:-benchmarks/omniglot/results/protonet_base_s0/heldout_runs}   # 20 runs from Korean + Sanskrit
mkdir -p $R $R/untrained
FA=.venv/bin/fastadapt
T="/usr/bin/time -v"
for cfg in "${@:-metanet-digits mann-digits metanet-omniglot mann-omniglot}"; do
  for c in $cfg; do
    extra=(); ev=()
    case $c in *omniglot) extra=(--set data.root=$DATA); ev=(--set eval.episodes=200);; esac
    echo "== $c $(date -u +%T) load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $R/load.log
    $T .venv/bin/python benchmarks/mann-metanet/untrained.py $c $R/untrained/$c.json "${extra[@]}" "${ev[@]}" \
      2> $R/$c.untrained.time
    $T $FA train $c --out $R/$c --quiet "${extra[@]}" > $R/$c.train.log 2> $R/$c.train.time
    echo "   trained $(date -u +%T) load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $R/load.log
    $T $FA eval $R/$c "${ev[@]}" --json $R/$c/eval_episodes.json > /dev/null 2> $R/$c.eval.time
    case $c in *omniglot)
      $T $FA eval $R/$c --set eval.omniglot_runs=$RUNS --json $R/$c/eval_runs.json > /dev/null 2> $R/$c.runs.time
      $T .venv/bin/python benchmarks/mann-metanet/untrained.py $c $R/untrained/$c.runs.json "${extra[@]}" \
        --set eval.omniglot_runs=$RUNS 2> $R/$c.untrained_runs.time;;
    esac
    echo "   done $(date -u +%T) load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $R/load.log
  done
done
