"""Query MSE of trained sinusoid runs on VALIDATION tasks (split ``"val"``), for choosing a setup.

The meta-test protocol (``fastadapt eval``) always uses split ``"test"`` (seeded by the run's
``train.seed``); this script adapts the run's latest checkpoint on ``--tasks`` tasks of the independent
``"val"`` stream (``split_episodes(n, seed, "val")``, seed ``--seed``, default the run's) with the same
adaptation code as ``fastadapt eval`` and prints the curve for steps 0..10, so setups can be compared
without looking at the test tasks.

Usage (repository root): .venv/bin/python benchmarks/sinusoid/validate.py RUN_DIR [RUN_DIR ...]
                             [--tasks 1000] [--seed S] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from fastadapt.algos.fewshot.common import torch_threads
from fastadapt.experiment.runner import load_run


def val_curve(run: Path, tasks: int, seed: int | None, steps: int = 10) -> dict[str, object]:
    """``{"run", "iteration", "seed", "shot", "mean": [steps+1], "se": [steps+1]}`` on ``"val"`` tasks."""
    cfg, learner, it = load_run(run)
    s = cfg.train.seed if seed is None else seed
    with torch_threads(learner.cfg.threads):
        ep, _, _ = learner.task.split_episodes(tasks, s, "val")
        fast, frozen = learner._split()
        errs = learner._curve(learner.model, fast, frozen, learner.lr_spec(), ep, steps, 250)  # [steps+1, tasks]
    mean = errs.mean(1)
    se = errs.std(1, unbiased=True) / math.sqrt(errs.shape[1])
    return {"run": str(run), "iteration": it, "seed": s, "shot": int(learner.task.shot),
            "mean": [round(float(v), 5) for v in mean], "se": [round(float(v), 5) for v in se]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    out = []
    for run in a.runs:
        r = val_curve(run, a.tasks, a.seed)
        out.append(r)
        m, se = r["mean"], r["se"]
        print(f"{run}  it={r['iteration']} shot={r['shot']} seed={r['seed']}  val k=1 {m[1]:.3f}±{se[1]:.3f}  "
              f"k=10 {m[10]:.3f}±{se[10]:.3f}  curve " + " ".join(f"{v:.3f}" for v in m))
    if a.json:
        a.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
