#!/bin/sh
# The recorded runs: sequential (one job at a time), nice 10, single-threaded torch; CPU time per run from
# /usr/bin/time -v in logs/. Usage: sh benchmarks/pearl/run_all.sh "sparse:0 dense:1 ..."
# PEARL_SET="key=value ..." adds config overrides; the session-4 runs (diagonal encoder factors, before the
# session-5 config change) are PEARL_SET=algo.encoder_precision_rank=0 for the dense config.
cd "$(dirname "$0")/../.." || exit 1
mkdir -p benchmarks/pearl/runs benchmarks/pearl/logs
JOBS=${1:-sparse:0 dense:0 dense:1 dense:2 sparse:1 sparse:2}
for job in $JOBS; do
  kind=${job%%:*}; seed=${job##*:}
  if [ "$kind" = dense ]; then cfg=pearl-navigation2d; else cfg=pearl-sparse-navigation2d; fi
  /usr/bin/time -v nice -n 10 .venv/bin/python benchmarks/pearl/run_pearl.py $cfg --seed "$seed" \
    --eval-at 20,40 --also-stochastic --out benchmarks/pearl/runs ${PEARL_SET:+--set $PEARL_SET} > "benchmarks/pearl/logs/$cfg-s$seed.log" 2>&1
done
