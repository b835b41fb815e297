"""Train + evaluate shipped single-task RL configs through the CLI and keep the evidence.

Usage (from the repository root):

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/rl/run_rl_bench.py ppo-cartpole --seeds 0 1 2

For every seed: ``fastadapt train CONFIG --seed S --out RUNS/CONFIG-sS`` then
``fastadapt eval RUNS/CONFIG-sS --json ...``; the run's config.yaml, metrics.jsonl, summary.json and
eval.json are copied to ``benchmarks/rl/results/CONFIG-sS/`` (checkpoints stay in RUNS, default
``/tmp/fastadapt-rl-runs``). Extra ``--set key=value`` overrides are passed to ``train``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--runs", default="/tmp/fastadapt-rl-runs")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--tag", default="", help="suffix of the result folder name")
    ap.add_argument("--dest", default=str(RESULTS), help="folder receiving CONFIG-sS/ (default results/)")
    args = ap.parse_args()
    exe = str(ROOT / ".venv" / "bin" / "fastadapt")
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    for seed in args.seeds:
        name = f"{args.config}{args.tag}-s{seed}"
        run = Path(args.runs) / name
        if run.exists():
            shutil.rmtree(run)
        sets = [x for o in args.overrides for x in ("--set", o)]
        load0 = os.getloadavg()[0]
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.time()
        subprocess.run([exe, "train", args.config, "--seed", str(seed), "--out", str(run), "--quiet", *sets],
                       check=True, env=env)
        train_s = time.time() - t0
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        load1 = os.getloadavg()[0]
        subprocess.run([exe, "eval", str(run), "--json", str(run / "eval-copy.json")], check=True, env=env)
        ru2 = resource.getrusage(resource.RUSAGE_CHILDREN)
        train_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
        eval_cpu = (ru2.ru_utime + ru2.ru_stime) - (ru1.ru_utime + ru1.ru_stime)
        dest = Path(args.dest) / name
        dest.mkdir(parents=True, exist_ok=True)
        for f in ("config.yaml", "metrics.jsonl", "summary.json", "eval.json"):
            shutil.copy(run / f, dest / f)
        (dest / "command.txt").write_text(
            f"OMP_NUM_THREADS=1 nice -n 10 fastadapt train {args.config} --seed {seed} --out RUN "
            + " ".join(f"--set {o}" for o in args.overrides)
            + f"\nfastadapt eval RUN --json eval.json\n# train wall time {train_s:.0f} s, train CPU time "
            + f"{train_cpu:.0f} s (eval CPU {eval_cpu:.0f} s), load avg {load0:.1f} at the start, "
            + f"{load1:.1f} at the end\n"
        )
        (dest / "timing.json").write_text(json.dumps({
            "train_wall_s": round(train_s, 1), "train_cpu_s": round(train_cpu, 1), "eval_cpu_s": round(eval_cpu, 1),
            "load_start": round(load0, 2), "load_end": round(load1, 2), "seed": seed,
            "overrides": args.overrides,
        }, indent=1) + "\n")
        print(f"{name}: done in {train_s:.0f} s wall, {train_cpu:.0f} s CPU", flush=True)


if __name__ == "__main__":
    sys.exit(main())
