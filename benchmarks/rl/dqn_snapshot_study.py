"""Development study (session 5): how do single DQN checkpoints compare with an ensemble of them?

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/rl/dqn_snapshot_study.py RUN_DIR [RUN_DIR ...]

For every run (a `fastadapt train dqn-cartpole` folder with checkpoints), evaluates the greedy policy of the
live Q-network of each kept checkpoint, and the greedy policy of the mean of their Q-values, on 50
*development* episodes (seed stream "dev-episodes" of the run seed: disjoint from `fastadapt eval`'s
"eval-episodes" and from the training/validation streams). Prints one JSON line per run.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

torch.set_num_threads(1)
import yaml  # noqa: E402

from fastadapt.algos.rl.common import evaluate_policy  # noqa: E402
from fastadapt.algos.rl.dqn import DQN, DQNConfig  # noqa: E402
from fastadapt.experiment.checkpoints import read_checkpoint  # noqa: E402
from fastadapt.tasks.rl.gym_env import make_gym_factory  # noqa: E402


def main() -> None:
    for run in map(Path, sys.argv[1:]):
        # the run's own config.yaml (no config-hash check: runs made before a new DQN option was added load too)
        raw = yaml.safe_load((run / "config.yaml").read_text())
        algo = {k: v for k, v in raw["algo"].items() if k != "name"}
        seed = int(raw["train"]["seed"])
        learner = DQN(DQNConfig(**algo), make_gym_factory(raw["task"]["env_id"]), seed)
        nets = {}
        for ck in sorted((run / "checkpoints").iterdir()):
            _, state = read_checkpoint(ck)
            q = type(learner.q)(learner.obs_dim, learner.act_n, learner.cfg.hidden, learner.cfg.activation)
            q.load_state_dict(state["learner"]["modules"]["q"])
            nets[ck.name] = q
        out = {"run": run.name}
        for name, q in nets.items():
            rets = evaluate_policy(learner.task.make, lambda o, q=q: q(o).argmax(-1), learner.obs_fn, 50,
                                   seed, "dev-episodes")
            out[name] = sum(rets) / len(rets)
        qs = list(nets.values())
        rets = evaluate_policy(learner.task.make, lambda o: torch.stack([q(o) for q in qs]).mean(0).argmax(-1),
                               learner.obs_fn, 50, seed, "dev-episodes")
        out["ensemble_mean_q"] = sum(rets) / len(rets)
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
