#!/usr/bin/env bash
# Session 6: one seed's full HalfCheetah evidence, Dir then Vel, each trained for exactly 310 meta-iterations
# (= the s0 runs' budget, 24.8M env steps; train.iterations=310 stops the run instead of a kill by hand) and
# then evaluated on 20 held-out tasks with the 40-iteration pretrained baseline. Two seeds ran side by side
# on the two cores (one thread each). Usage: benchmarks/maml-rl/chain_seed.sh SEED
set -uo pipefail
seed="$1"
here="$(cd "$(dirname "$0")" && pwd)"
for task in dir vel; do
  TASK=$task "$here/run_halfcheetah.sh" "$seed" --set train.iterations=310
  TASK=$task "$here/eval_halfcheetah.sh" "$seed" 20 40
done
