#!/usr/bin/env bash
# MetaNet on Omniglot without the 20-way 5-shot cell: its evaluation maps 100 support gradients of
# 32x64 coordinates through the generator MLP per task and cost minutes of CPU per 200 episodes on this
# machine (see README). Usage: nice -n 10 bash benchmarks/mann-metanet/run_metanet_omniglot.sh
set -u
cd "$(dirname "$0")/../.."
R=benchmarks/mann-metanet/results
c=metanet-omniglot
DATA=${DATA:-/work/shared/data/omniglot}
RUNS=${RUNS:-benchmarks/omniglot/results/protonet_base_s0/heldout_runs}
FA=.venv/bin/fastadapt
T="/usr/bin/time -v"
D=(--set data.root=$DATA)
E1=(--set eval.episodes=200 eval.ways=5 "eval.shots=[1,5]")
E2=(--set eval.episodes=200 eval.ways=20 eval.shots=1)
mkdir -p $R/untrained
echo "== $c $(date -u +%T) load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $R/load.log
$T .venv/bin/python benchmarks/mann-metanet/untrained.py $c $R/untrained/$c.json "${D[@]}" "${E1[@]}" 2> $R/$c.untrained.time
$T .venv/bin/python benchmarks/mann-metanet/untrained.py $c $R/untrained/$c.20way.json "${D[@]}" "${E2[@]}" 2> $R/$c.untrained_20way.time
$T $FA train $c --out $R/$c --quiet "${D[@]}" > $R/$c.train.log 2> $R/$c.train.time
echo "   trained $(date -u +%T) load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $R/load.log
$T $FA eval $R/$c "${E1[@]}" --json $R/$c/eval_episodes.json > /dev/null 2> $R/$c.eval.time
$T $FA eval $R/$c "${E2[@]}" --json $R/$c/eval_20way.json > /dev/null 2> $R/$c.eval_20way.time
$T $FA eval $R/$c --set eval.omniglot_runs=$RUNS --json $R/$c/eval_runs.json > /dev/null 2> $R/$c.runs.time
$T .venv/bin/python benchmarks/mann-metanet/untrained.py $c $R/untrained/$c.runs.json "${D[@]}" \
  --set eval.omniglot_runs=$RUNS 2> $R/$c.untrained_runs.time
echo "   done $(date -u +%T) load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $R/load.log
