"""How the 20 evaluation episodes of finished DQN CartPole runs end (session 3).

    .venv/bin/python benchmarks/rl/dqn_failure_modes.py RUN_DIR [RUN_DIR ...]

Replays the same episodes as ``fastadapt eval RUN_DIR`` (env seeds from ``np_rng(train seed,
"eval-episodes")``, greedy actions of the checkpointed Q-network) and counts how each ends: ``x`` = terminated
with the cart off the track (|x| > 2.4), ``angle`` = terminated with the pole fallen, ``500`` = time limit.
Prints one JSON line per run (mean return included, to check it matches eval.json).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

torch.set_num_threads(1)
from fastadapt.core.seeding import np_rng  # noqa: E402
from fastadapt.experiment.runner import load_run  # noqa: E402


def main() -> None:
    for run in map(Path, sys.argv[1:]):
        cfg, learner, iteration = load_run(run)
        rng = np_rng(cfg.train.seed, "eval-episodes")
        env = learner.task.make()
        modes = {"x": 0, "angle": 0, "500": 0}
        returns = []
        for _ in range(cfg.eval.episodes):
            o, _ = env.reset(seed=int(rng.integers(0, 2**31 - 1)))
            done, te, total = False, False, 0.0
            while not done:
                with torch.no_grad():
                    a = int(learner.greedy(learner.obs_fn([o]))[0])
                o, r, te, tr, _ = env.step(a)
                total += float(r)
                done = bool(te or tr)
            returns.append(total)
            modes["x" if te and abs(o[0]) > 2.4 else "angle" if te else "500"] += 1
        env.close()
        print(json.dumps({"run": run.name, "iteration": iteration, "mean": sum(returns) / len(returns),
                          "modes": modes}), flush=True)


if __name__ == "__main__":
    main()
