#!/usr/bin/env bash
# Meta-test of the (partial) HalfCheetah-Dir run at its last checkpoint: adaptation curve k = 0..3 on held-out
# tasks for maml-trpo, pretrained (TRPO on the task mixture for as many iterations as the checkpoint's
# meta-iterations, i.e. half the env steps) and random-init. Usage: eval_halfcheetah.sh SEED TEST_TASKS PRE_ITERS
set -euo pipefail
seed="$1"; n="$2"; pre="$3"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$here/runs/halfcheetah-dir-s$seed"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
uptime > "$out/load-eval-start.txt"
/usr/bin/time -v -o "$out/time-eval.txt" nice -n 10 "$root/.venv/bin/fastadapt" eval "$out" \
  --json "$out/eval-rows.json" --set eval.test_tasks="$n" --set eval.pretrain_iterations="$pre" \
  > "$out/eval-stdout.txt" 2>&1
uptime > "$out/load-eval-end.txt"
