"""Evaluate the *untrained* learner of a config (same seed, same held-out episodes as `fastadapt eval`).

Usage: python benchmarks/mann-metanet/untrained.py CONFIG OUT.json [--set key=value ...]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from fastadapt.core.allocator import tune_allocator
from fastadapt.experiment.catalog import load_all
from fastadapt.experiment.config import load_config
from fastadapt.experiment.runner import build_learner


def main() -> None:
    config, out = sys.argv[1], Path(sys.argv[2])
    overrides = [a for a in sys.argv[3:] if a != "--set"]
    tune_allocator()  # glibc mmap threshold up: see fastadapt.core.allocator
    torch.set_num_threads(1)
    load_all()
    cfg = load_config(config, overrides)
    learner = build_learner(cfg)
    t0, c0 = time.monotonic(), time.process_time()
    rows = learner.evaluate(cfg.eval, cfg.train.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "config": cfg.name, "untrained": True, "seed": cfg.train.seed, "overrides": overrides,
        "wall_s": round(time.monotonic() - t0, 2), "cpu_s": round(time.process_time() - c0, 2),
        "rows": [{"method": r.method, "setting": r.setting, "mean": r.mean, "se": r.se, "n": r.n,
                  "extra": r.extra} for r in rows],
    }, indent=1))


if __name__ == "__main__":
    main()
