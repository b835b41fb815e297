#!/bin/sh
# Session 5 runs (sequential, one process, nice 10, single-threaded torch).
# Usage: sh benchmarks/pearl/session5/run.sh NAME CONFIG SEED [--set k=v ...]
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
name=$1; cfg=$2; seed=$3; shift 3
D=benchmarks/pearl/session5
mkdir -p $D/runs/$name $D/logs
/usr/bin/time -v nice -n 10 .venv/bin/python benchmarks/pearl/run_pearl.py $cfg --seed $seed --eval-at 30 \
  --also-stochastic --out $D/runs/$name "$@" > $D/logs/$name-$cfg-s$seed.log 2>&1
