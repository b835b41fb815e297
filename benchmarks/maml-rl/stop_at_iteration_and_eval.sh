#!/usr/bin/env bash
# stop a benchmark run's training after checkpoint STOP, then run the meta-test on that checkpoint
wrapper=$1; stop=$2
timep=$(pgrep -P $wrapper); py=$(pgrep -P $timep)
out=$(tr '\0' ' ' < /proc/$py/cmdline | sed 's/.*--out \([^ ]*\).*/\1/')
cfg=$(basename $out | sed 's/-s[0-9]*$//'); seed=$(basename $out | sed 's/.*-s//')
ck=$(printf "%s/checkpoints/ckpt-%08d" $out $stop)
while [ ! -d "$ck" ]; do sleep 10; if ! kill -0 $py 2>/dev/null; then break; fi; done
kill $wrapper $py 2>/dev/null
sleep 2
here=/work/main/benchmarks/maml-rl
uptime > "$out/load-after-train.txt"
[ -f $here/runs/$cfg-s$seed.load-start.txt ] && mv $here/runs/$cfg-s$seed.load-start.txt $out/load-start.txt
[ -f $here/runs/$cfg-s$seed.time-train.txt ] && mv $here/runs/$cfg-s$seed.time-train.txt $out/time-train-killed.txt
echo "$py" > $out/train-pid.txt
extra=""
if [ "$cfg" != "maml-trpo-navigation2d" ]; then extra="--set eval.baselines=[]"; fi
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
/usr/bin/time -v -o "$out/time-eval.txt" nice -n 5 /work/main/.venv/bin/fastadapt eval "$out" \
  --set eval.pretrain_iterations=$stop $extra --json "$out/eval-rows.json" > "$out/eval-stdout.txt" 2>&1
uptime > "$out/load-after-eval.txt"
