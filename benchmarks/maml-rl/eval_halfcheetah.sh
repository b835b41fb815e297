#!/usr/bin/env bash
# Meta-test of a HalfCheetah-Dir run at its last checkpoint: adaptation curve k = 0..3 on held-out tasks for
# maml-trpo, pretrained (ONE policy trained with TRPO on the meta-train task mixture for PRE_ITERS iterations of
# meta_batch x fast_batch episodes, then fine-tuned with the same inner step) and random-init, same tasks and
# sampling seeds for all. Usage: eval_halfcheetah.sh SEED TEST_TASKS PRE_ITERS
# Session 3: one thread, not niced (session 2 used nice 10). Writes into runs/halfcheetah-dir-s<SEED>/:
# eval-rows.json, eval.json/.md (the CLI's), eval-stdout.txt, time-eval.txt, load-eval-{start,end}.txt.
set -euo pipefail
seed="$1"; n="$2"; pre="$3"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
task="${TASK:-dir}"   # TASK=vel for HalfCheetah-Vel (session 5)
out="$here/runs/halfcheetah-$task-s$seed"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
uptime > "$out/load-eval-start.txt"
/usr/bin/time -v -o "$out/time-eval.txt" "$root/.venv/bin/fastadapt" eval "$out" \
  --json "$out/eval-rows.json" --set eval.test_tasks="$n" --set eval.pretrain_iterations="$pre" \
  --set eval.adapt_steps=3 --set 'eval.baselines=[pretrained,random-init]' \
  > "$out/eval-stdout.txt" 2>&1
uptime > "$out/load-eval-end.txt"
