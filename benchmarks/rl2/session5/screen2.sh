#!/bin/bash
# Session 5, 4th screening run (replaced the planned h128/t1024/lr3e-3 run, which would have done only ~60
# iterations in 300 s): same protocol as screen.sh.
cd /work/main
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
while kill -0 18229 2>/dev/null; do sleep 5; done
echo "== previous screen finished $(date -u +%T)"
run() {
  dl=$(( $(date +%s) + 300 ))
  echo "== $1 start $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  /usr/bin/time -v .venv/bin/python benchmarks/rl2/run_rl2.py --task tabular-mdp --episodes 10 --seed 0 \
    --iterations 100000 --eval-trials 500 --eval-batch 500 --deadline-unix $dl \
    --out benchmarks/rl2/session5/screen --tag "$1" --algo "$2" > benchmarks/rl2/session5/logs/$1.log 2>&1
  echo "== $1 end $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
}
run scr-h128-t256-lam95-ent01 '{"trials_per_iter":256,"hidden":128,"lr":2e-3,"anneal_iterations":10000,"ent_coef":0.01,"gae_lambda":0.95}'
