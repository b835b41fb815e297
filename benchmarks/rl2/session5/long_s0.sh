#!/bin/bash
# Session 5 long run: tabular MDP n=10, seed 0, chosen setting (h64, 256 trials/iter, lr 2e-3 -> 1e-4 and
# entropy 0.01 -> 0 annealed over 1400 iterations, GAE lambda 0.95), wall-clock training deadline 14:17 UTC,
# then 5000 held-out test trials (greedy and sampled).
# (A first start with 2000 planned iterations was stopped by hand after 40 iterations at 13:06 UTC: at the
# measured ~2.8 wall-s per iteration under load 4 it could not finish its annealing before the deadline.)
cd /work/main
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
echo "start $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/time -v .venv/bin/python benchmarks/rl2/run_rl2.py --task tabular-mdp --episodes 10 --seed 0 \
  --iterations 1400 --eval-trials 5000 --eval-batch 1000 \
  --deadline-unix $(date -d '2026-12-03 14:17:00 UTC' +%s) \
  --tag mdp-n10-session5-s0 --out benchmarks/rl2/results \
  --algo '{"trials_per_iter":256,"hidden":64,"lr":2e-3,"lr_final":1e-4,"anneal_iterations":1400,"ent_coef":0.01,"ent_coef_final":0.0,"gae_lambda":0.95}'
echo "end $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
