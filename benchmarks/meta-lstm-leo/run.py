"""Meta-LSTM / LEO learning evidence: evaluate the untrained learner, train, evaluate again.

Builds the learner exactly as ``fastadapt train CONFIG`` does (shipped config + ``--set`` overrides,
:func:`fastadapt.experiment.runner.build_learner`), then

- evaluates the *untrained* learner (iteration 0: same config and seed, no training) with the config's
  ``eval:`` protocol (way x shot cells, ``--episodes`` held-out episodes each, mean / se / 95% interval);
- trains ``train.iterations`` iterations (``train_step``), logging metrics to ``train_log.jsonl``;
- evaluates at every iteration in ``--eval-at`` (e.g. LEO's end of pretraining) and at the end;
- with ``--runs DIR`` also scores official-format 20-way one-shot runs (shared protocol) at every
  evaluation point.

CPU seconds (this process, all threads; training and evaluation separately), wall seconds and the load
average are written to ``OUT/result.json``.

    nice -n 10 .venv/bin/python benchmarks/meta-lstm-leo/run.py meta-lstm-digits --out DIR [--set k=v ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import torch

from fastadapt.core.allocator import allocator_state, tune_allocator
from fastadapt.experiment.catalog import load_all
from fastadapt.experiment.config import load_config
from fastadapt.experiment.runner import build_learner


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--out", required=True)
    ap.add_argument("--set", nargs="*", default=[])
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--eval-seed", type=int, default=0)
    ap.add_argument("--eval-at", default="", help="comma-separated extra iterations to evaluate at")
    ap.add_argument("--runs", default="", help="folder of official-format one-shot runs to score")
    args = ap.parse_args()
    tune_allocator()  # glibc mmap threshold up: see fastadapt.core.allocator
    torch.set_num_threads(1)
    load_all()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(args.config, args.set, args.seed)
    learner = build_learner(cfg)
    ecfg = learner.coerce_eval_config(cfg.eval.model_dump() if cfg.eval is not None else {})
    ecfg = ecfg.model_copy(update={"episodes": args.episodes})
    iters = cfg.train.iterations
    eval_at = sorted({0, iters} | {int(s) for s in args.eval_at.split(",") if s.strip()})
    t0_wall, t0_cpu = time.time(), cpu_seconds()
    train_cpu = eval_cpu = 0.0
    evals: list[dict[str, object]] = []
    loads: list[list[float]] = []

    def evaluate(it: int) -> None:
        nonlocal eval_cpu
        c = cpu_seconds()
        w = time.time()
        rows = [r.to_json() for r in learner.evaluate(ecfg, args.eval_seed)]
        if args.runs:
            rows += [r.to_json() for r in learner.evaluate(ecfg.model_copy(update={"omniglot_runs": args.runs}),
                                                           args.eval_seed)]
        eval_cpu += cpu_seconds() - c
        evals.append({"iteration": it, "rows": rows, "cpu_s": cpu_seconds() - c, "wall_s": time.time() - w})
        loads.append(list(os.getloadavg()))
        brief = {f"{r['setting'].get('protocol', '')}{r['setting']['way']}w{r['setting']['shot']}s":
                 round(r["mean"], 4) for r in rows}
        print(f"[eval @ {it}] {brief}", flush=True)

    log = (out / "train_log.jsonl").open("w")
    for it in range(iters + 1):
        if it in eval_at:
            evaluate(it)
        if it == iters:
            break
        c = cpu_seconds()
        m = learner.train_step(it)
        train_cpu += cpu_seconds() - c
        log.write(json.dumps({"iteration": it, **m}) + "\n")
        if (it + 1) % max(1, cfg.train.log_every) == 0:
            log.flush()
            loads.append(list(os.getloadavg()))
            print(f"[{it + 1}/{iters}] " + " ".join(f"{k}={v:.4g}" for k, v in m.items()), flush=True)
    log.close()
    result = {
        "config": cfg.raw,
        "command_args": vars(args),
        "iterations": iters,
        "train_cpu_s": train_cpu,
        "eval_cpu_s": eval_cpu,
        "total_cpu_s": cpu_seconds() - t0_cpu,
        "wall_s": time.time() - t0_wall,
        "loadavg_samples": loads,
        "evals": evals,
        "torch_threads": torch.get_num_threads(),
        "allocator": allocator_state(),
    }
    (out / "result.json").write_text(json.dumps(result, indent=1))
    print(f"done: train {train_cpu:.0f} CPU-s, eval {eval_cpu:.0f} CPU-s, wall {result['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
