"""Re-evaluate a gradient-based model saved by benchmarks/omniglot/run_omniglot.py with another number of
test-time inner steps (same episodes, same held-out runs, same seed 0).

    .venv/bin/python benchmarks/omniglot-gradient/reeval.py benchmarks/omniglot-gradient/results/maml_s0 \
        --eval-inner-steps 1 --episodes 100 --out benchmarks/omniglot-gradient/results/maml_s0/reeval_steps1.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from fastadapt.core.registry import ALGOS, TASKS


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--eval-inner-steps", type=int, required=True)
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    d = Path(args.dir)
    res = json.loads((d / "result.json").read_text())
    importlib.import_module(f"fastadapt.algos.fewshot.{res['algo']}")
    importlib.import_module("fastadapt.tasks.fewshot.omniglot")
    entry, tentry = ALGOS.get(res["algo"]), TASKS.get("omniglot")
    task = tentry.build(tentry.config.model_validate(res["task_config"]))
    acfg = entry.config.model_validate({**res["algo_config"], "eval_inner_steps": args.eval_inner_steps})
    learner = entry.build(acfg, task, res["seed"])
    learner.model.load_state_dict(load_file(str(d / "model.safetensors")))
    t0 = time.time()
    ecls = entry.eval_config
    rows = learner.evaluate(ecls.model_validate({"omniglot_runs": str(d / "heldout_runs")}), 0)
    rows += learner.evaluate(ecls.model_validate({"ways": [5, 20], "shots": [1, 5], "query": 5,
                                                  "episodes": args.episodes, "batch": 10}), 0)
    out = {"source": str(d), "eval_inner_steps": args.eval_inner_steps, "wall_s": round(time.time() - t0, 1),
           "rows": [r.to_json() for r in rows]}
    Path(args.out).write_text(json.dumps(out, indent=1))
    for r in rows:
        print(r.method, r.setting, f"acc={r.mean:.4f}", f"ci95={[round(c, 4) for c in r.extra['ci95']]}", f"n={r.n}")


if __name__ == "__main__":
    main()
