#!/usr/bin/env bash
# continue a 20-iteration run to the config's 40 iterations and re-run the meta-test
out=$1; cfg=$2; seed=$3; extra="$4"
while [ ! -f $out/load-after-eval.txt ]; do sleep 10; done
mkdir -p $out/at-iter20
for f in eval.json eval.md eval-rows.json eval-stdout.txt time-eval.txt load-after-eval.txt; do [ -f $out/$f ] && mv $out/$f $out/at-iter20/$f; done
cp $out/metrics.jsonl $out/at-iter20/metrics.jsonl
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
uptime > $out/load-resume-start.txt
/usr/bin/time -v -o $out/time-train-resume-20-40.txt nice -n 5 /work/main/.venv/bin/fastadapt train $cfg --seed $seed --out $out --resume --quiet > $out/train-resume-stdout.txt 2>&1
uptime > $out/load-after-train.txt
/usr/bin/time -v -o "$out/time-eval.txt" nice -n 5 /work/main/.venv/bin/fastadapt eval "$out" $extra --json "$out/eval-rows.json" > "$out/eval-stdout.txt" 2>&1
uptime > "$out/load-after-eval.txt"
