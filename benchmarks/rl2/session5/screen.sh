#!/bin/bash
# Session 5 screening runs (tabular MDP, n=10, seed 0): each trains for ~300 s of wall clock
# (deadline; lr/entropy effectively constant: anneal_iterations=10000), then evaluates on 500 test trials.
cd /work/main
# NOTE: this driver was stopped (kill of the driver only) during run 3; run 4 below (h128/t1024/lr3e-3) never
# ran and was replaced by screen2.sh (h128/t256).
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
run() {  # tag json
  dl=$(( $(date +%s) + 300 ))
  echo "== $1 start $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  /usr/bin/time -v .venv/bin/python benchmarks/rl2/run_rl2.py --task tabular-mdp --episodes 10 --seed 0 \
    --iterations 100000 --eval-trials 500 --eval-batch 500 --deadline-unix $dl \
    --out benchmarks/rl2/session5/screen --tag "$1" --algo "$2" > benchmarks/rl2/session5/logs/$1.log 2>&1
  echo "== $1 end $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
}
run scr-h128-t512-lam95-ent01 '{"trials_per_iter":512,"hidden":128,"lr":2e-3,"anneal_iterations":10000,"ent_coef":0.01,"gae_lambda":0.95}'
run scr-h64-t512-lam95-ent01  '{"trials_per_iter":512,"hidden":64,"lr":2e-3,"anneal_iterations":10000,"ent_coef":0.01,"gae_lambda":0.95}'
run scr-h128-t512-lam95-ent03 '{"trials_per_iter":512,"hidden":128,"lr":2e-3,"anneal_iterations":10000,"ent_coef":0.03,"gae_lambda":0.95}'
run scr-h128-t1024-lam95-ent01-lr3 '{"trials_per_iter":1024,"hidden":128,"lr":3e-3,"anneal_iterations":10000,"ent_coef":0.01,"gae_lambda":0.95}'
