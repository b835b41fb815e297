"""Diagnostic: run N meta-iterations of a shipped config (with --set style overrides) and print every
iteration's metrics as JSON lines, plus CPU seconds. Used to find the cause of the MAML-TRPO seed-2
divergence on navigation2d (see ../README.md, "Seed-2 divergence: cause and fix").

usage: run_iters.py CONFIG SEED ITERS OUT.jsonl [key=value ...]
"""

from __future__ import annotations

import json
import resource
import sys
import time

import torch


def main() -> None:
    cfg_name, seed, iters, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    overrides = sys.argv[5:]
    torch.set_num_threads(1)
    from fastadapt.experiment import catalog
    from fastadapt.experiment.config import load_config

    catalog.load_all()
    cfg = load_config(cfg_name, overrides, seed=seed)
    learner = cfg.algo_entry.build(cfg.algo, cfg.task_entry.build(cfg.task), seed)
    t0 = time.perf_counter()
    with open(out, "w") as f:
        for i in range(iters):
            m = learner.train_step(i)
            ru = resource.getrusage(resource.RUSAGE_SELF)
            m.update(iteration=i + 1, wall_s=round(time.perf_counter() - t0, 2),
                     cpu_s=round(ru.ru_utime + ru.ru_stime, 2))
            f.write(json.dumps(m) + "\n")
            f.flush()
            print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items() if k != "env_steps"},
                  flush=True)


if __name__ == "__main__":
    main()
