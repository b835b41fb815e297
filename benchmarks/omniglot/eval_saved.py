"""Re-evaluate models saved by run_omniglot.py on the held-out runs: test-time options and ensembles.

    nice -n 10 .venv/bin/python benchmarks/omniglot/eval_saved.py --out benchmarks/omniglot/results/extra.json \
        --runs benchmarks/omniglot/results/protonet_base_s0/heldout_runs \
        benchmarks/omniglot/results/protonet_base_s0 benchmarks/omniglot/results/protonet_aug_s0 ...

For every model directory: the plain score and (ProtoNet only) test-time augmentation / transductive
refinement; then the ensemble of all given models (mean of softmax probabilities). The runs are only
evaluated, never trained or tuned on; the test-time settings are fixed in advance (tta=4 shifted copies
of up to 2 pixels, 3 soft k-means steps).
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from pathlib import Path

import torch

from fastadapt.core.registry import ALGOS, TASKS
from fastadapt.tasks.fewshot.omniglot_runs import load_runs, runs_accuracy


def load_learner(d: Path):  # noqa: ANN201
    res = json.loads((d / "result.json").read_text())
    importlib.import_module(f"fastadapt.algos.fewshot.{res['algo']}")
    importlib.import_module("fastadapt.tasks.fewshot.omniglot")
    entry, tentry = ALGOS.get(res["algo"]), TASKS.get("omniglot")
    task = tentry.build(tentry.config.model_validate(res["task_config"]))
    learner = entry.build(entry.config.model_validate(res["algo_config"]), task, res["seed"])
    from safetensors.torch import load_file

    learner.model.load_state_dict(load_file(str(d / "model.safetensors")))
    return res, learner


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--runs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.time()
    rows = []
    probs = {}
    runs = None
    for d in map(Path, args.dirs):
        res, learner = load_learner(d)
        if runs is None:
            runs = load_runs(args.runs, int(learner.task.x_shape[-1]), crop=bool(learner.task.info.get("crop", False)))
        variants = {"plain": {}}
        if res["algo"] == "protonet":
            variants.update({"tta4": {"tta": 4}, "transductive3": {"transductive": 3},
                             "tta4+transductive3": {"tta": 4, "transductive": 3}})
        for vname, opts in variants.items():
            s = learner.episode_scores(runs.episode, opts, seed=0)
            p = torch.softmax(s, -1)
            probs[(d.name, vname)] = p
            acc = runs_accuracy(p.argmax(-1), runs)
            rows.append({"model": d.name, "variant": vname, "accuracy": float(acc.mean()),
                         "error": float(1 - acc.mean()), "per_run": acc.tolist()})
            print(d.name, vname, f"error={1 - acc.mean():.4f}", flush=True)
    assert runs is not None
    for vname in ("plain", "best"):
        ps = []
        for d in map(Path, args.dirs):
            keys = [k for k in probs if k[0] == d.name]
            if vname == "best" and (d.name, "tta4+transductive3") in probs:
                ps.append(probs[(d.name, "tta4+transductive3")])
            else:
                ps.append(probs[(d.name, "plain")])
            del keys
        acc = runs_accuracy(torch.stack(ps).mean(0).argmax(-1), runs)
        rows.append({"model": "ensemble:" + "+".join(Path(x).name for x in args.dirs), "variant": vname,
                     "accuracy": float(acc.mean()), "error": float(1 - acc.mean()), "per_run": acc.tolist()})
        print("ensemble", vname, f"error={1 - acc.mean():.4f}", flush=True)
    Path(args.out).write_text(json.dumps({"runs": args.runs, "rows": rows, "wall_s": time.time() - t0},
                                         indent=1))


if __name__ == "__main__":
    main()
