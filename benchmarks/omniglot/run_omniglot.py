"""Omniglot few-shot benchmark for the metric-based learners (ProtoNet, Matching, Relation).

Meta-trains on the alphabets of the two official *minimal* background splits that are not held out, under
a CPU-time budget, then meta-tests on the held-out alphabets:

- 5-way / 20-way x 1-shot / 5-shot episodes (mean accuracy, standard error, 95% interval);
- 20-way one-shot *within-alphabet* runs in the official runs format, built from the held-out alphabets
  (:func:`fastadapt.tasks.fewshot.omniglot_runs.build_runs`; never used for training or tuning).

Usage (see README.md for the recorded commands):

    nice -n 10 .venv/bin/python benchmarks/omniglot/run_omniglot.py --algo protonet --cpu-minutes 20 \
        --seed 0 --out benchmarks/omniglot/results/protonet_s0 [--set key=value ...]

``--set`` keys go to the algo config (``augment=affine``), ``task.KEY=...`` to the task config and
``eval.KEY=...`` to the eval config. The budget counts this process's CPU time (all threads), so
"20 CPU-minutes" is at most 20 minutes on 1 core / 10 on 2 cores of an idle machine; wall time is recorded
too (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import time
from pathlib import Path

import torch

from fastadapt.core.allocator import allocator_state, tune_allocator
from fastadapt.core.registry import ALGOS, TASKS

ROOT = Path(__file__).resolve().parents[3] / "shared" / "data" / "omniglot"
HELD_OUT = ["Korean", "Sanskrit"]
SOURCES = ["images_background_small1", "images_background_small2"]


def parse_value(v: str) -> object:
    try:
        return json.loads(v)
    except json.JSONDecodeError:
        return v


def cpu_seconds() -> float:
    """CPU time of this process (user + system, all threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def load_algo_module(name: str) -> None:
    """Import every built-in algorithm and task (the CLI's catalog), so any registered name works
    (``fomaml``, ``anil`` and ``metasgd`` live in ``maml.py``, not in modules of their own)."""
    del name
    from fastadapt.experiment.catalog import load_all

    load_all()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--algo", default="protonet")
    ap.add_argument("--cpu-minutes", type=float, default=20.0)
    ap.add_argument("--max-iterations", type=int, default=10**9)
    ap.add_argument("--deadline", default="", help="UTC HH:MM at which training stops even if budget is left")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    ap.add_argument("--root", default=str(ROOT))
    ap.add_argument("--episodes", type=int, default=300, help="test episodes per way/shot setting")
    ap.add_argument("--decay-at", default="0.5,0.75", help="budget fractions where lr halves")
    ap.add_argument("--skip-episodes-eval", action="store_true")
    ap.add_argument("--set", nargs="*", default=[])
    args = ap.parse_args()
    tune_allocator()  # glibc mmap threshold up: see fastadapt.core.allocator
    torch.set_num_threads(args.threads)
    load_algo_module(args.algo)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    algo_kw: dict[str, object] = {}
    task_kw: dict[str, object] = {"root": args.root, "sources": SOURCES, "test_alphabets": HELD_OUT,
                                  "way": 60, "shot": 1, "query": 5}
    eval_kw: dict[str, object] = {}
    for s in args.set:
        k, v = s.split("=", 1)
        if k.startswith("task."):
            task_kw[k[5:]] = parse_value(v)
        elif k.startswith("eval."):
            eval_kw[k[5:]] = parse_value(v)
        else:
            algo_kw[k] = parse_value(v)
    entry = ALGOS.get(args.algo)
    tentry = TASKS.get("omniglot")
    tcfg = tentry.config.model_validate(task_kw)
    acfg = entry.config.model_validate(algo_kw)
    task = tentry.build(tcfg)
    learner = entry.build(acfg, task, args.seed)

    # the held-out runs (official format), built deterministically from the held-out alphabets
    from fastadapt.tasks.fewshot.omniglot import scan_omniglot
    from fastadapt.tasks.fewshot.omniglot_runs import build_runs

    runs_dir = out / "heldout_runs"
    if not (runs_dir / "runs.json").exists():
        build_runs(scan_omniglot(args.root, SOURCES), runs_dir, HELD_OUT, n_runs=20, seed=0)

    budget = args.cpu_minutes * 60.0
    decay_at = [float(f) for f in args.decay_at.split(",") if f]
    base_lr = acfg.lr
    t0, c0 = time.time(), cpu_seconds()
    log = open(out / "train_log.jsonl", "w")
    it = 0
    deadline = None
    if args.deadline:
        import datetime as dt

        hh, mm = (int(v) for v in args.deadline.split(":"))
        now = dt.datetime.now(dt.timezone.utc)
        end = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
        deadline = time.time() + (end - now).total_seconds()
    stopped_by = "cpu budget"
    while it < args.max_iterations:
        used = cpu_seconds() - c0
        if used >= budget:
            break
        if deadline is not None and time.time() >= deadline:
            stopped_by = "wall-clock deadline"
            break
        frac = used / budget
        if deadline is not None:
            frac = max(frac, (time.time() - t0) / max(1.0, deadline - t0))
        lr = base_lr * 0.5 ** sum(frac >= d for d in decay_at)
        learner.cfg = learner.cfg.model_copy(update={"lr": lr})
        m = learner.train_step(it)
        it += 1
        if it % 20 == 0 or it == 1:
            rec = {"iteration": it, "cpu_s": round(cpu_seconds() - c0, 1),
                   "wall_s": round(time.time() - t0, 1), **{k: round(v, 5) for k, v in m.items()}}
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print(json.dumps(rec), flush=True)
    train_wall, train_cpu = time.time() - t0, cpu_seconds() - c0
    log.close()
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in learner.model.state_dict().items()}, str(out / "model.safetensors"))

    eval_cls = entry.eval_config
    rows = []
    t1 = time.time()
    runs_cfg = eval_cls.model_validate({**eval_kw, "omniglot_runs": str(runs_dir)})
    rows += learner.evaluate(runs_cfg, 0)
    if not args.skip_episodes_eval:
        ecfg = eval_cls.model_validate({"ways": [5, 20], "shots": [1, 5], "query": 5,
                                        "episodes": args.episodes, "batch": 10, **eval_kw})
        rows += learner.evaluate(ecfg, 0)
    eval_wall = time.time() - t1
    load = os.getloadavg()
    result = {
        "algo": args.algo, "seed": args.seed, "algo_config": acfg.model_dump(), "task_config": tcfg.model_dump(),
        "eval_overrides": eval_kw, "iterations": it, "train_cpu_s": round(train_cpu, 1),
        "train_wall_s": round(train_wall, 1), "eval_wall_s": round(eval_wall, 1),
        "threads": args.threads, "allocator": allocator_state(), "loadavg_at_end": load, "stopped_by": stopped_by,
        "cpu_budget_s": budget, "held_out_alphabets": HELD_OUT,
        "train_alphabets": sorted({task.dataset.groups[c] for c in task.splits["train"]}),
        "rows": [r.to_json() for r in rows], "command": " ".join(sys.argv),
    }
    (out / "result.json").write_text(json.dumps(result, indent=1))
    for r in rows:
        ci = r.extra.get("ci95")
        print(r.method, r.setting, f"acc={r.mean:.4f}", f"ci95=[{ci[0]:.4f},{ci[1]:.4f}]", f"n={r.n}")
    print(f"stopped_by={stopped_by} iterations={it} train_cpu_s={train_cpu:.0f} train_wall_s={train_wall:.0f} eval_wall_s={eval_wall:.0f}")


if __name__ == "__main__":
    main()
