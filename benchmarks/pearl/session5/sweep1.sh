#!/bin/sh
# Sequential diagnostic sweep (one process at a time), dense nav2d seed 0, 30 iterations each.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
D=benchmarks/pearl/session5/sweep1
mkdir -p $D
run() { name=$1; shift; nice -n 10 .venv/bin/python benchmarks/pearl/session5/diag_encoder.py --iterations 30 --every 30 --set "$@" > $D/$name.log 2>&1; }
run tasks100 algo.num_train_tasks=100
run kl1 algo.kl_lambda=1.0
run gamma09 algo.gamma=0.9
run post1 algo.posterior_episodes=1
run ctx64 algo.context_batch=64
