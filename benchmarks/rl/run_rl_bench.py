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
import os
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
    args = ap.parse_args()
    exe = str(ROOT / ".venv" / "bin" / "fastadapt")
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    for seed in args.seeds:
        name = f"{args.config}{args.tag}-s{seed}"
        run = Path(args.runs) / name
        if run.exists():
            shutil.rmtree(run)
        sets = [x for o in args.overrides for x in ("--set", o)]
        t0 = time.time()
        subprocess.run([exe, "train", args.config, "--seed", str(seed), "--out", str(run), "--quiet", *sets],
                       check=True, env=env)
        train_s = time.time() - t0
        subprocess.run([exe, "eval", str(run), "--json", str(run / "eval-copy.json")], check=True, env=env)
        dest = RESULTS / name
        dest.mkdir(parents=True, exist_ok=True)
        for f in ("config.yaml", "metrics.jsonl", "summary.json", "eval.json"):
            shutil.copy(run / f, dest / f)
        (dest / "command.txt").write_text(
            f"OMP_NUM_THREADS=1 nice -n 10 fastadapt train {args.config} --seed {seed} --out RUN "
            + " ".join(f"--set {o}" for o in args.overrides)
            + f"\nfastadapt eval RUN --json eval.json\n# train wall time {train_s:.0f} s, load avg "
            + f"{os.getloadavg()[0]:.1f} at the end\n"
        )
        print(f"{name}: done in {train_s:.0f} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
