"""Exact per-episode returns of a trained run's GREEDY policy: one trial per goal, all 21 goals, averaged.

With argmax actions the policy and the gridworld dynamics are deterministic, so one trial per goal gives the
exact expected return over the uniform goal prior (the same average over the 21 goals as the exact
Bayes-optimal value; no sampling error). Works for RL² and VariBAD run directories (both expose
``rollout(env, tasks, env_seed, gen, greedy, record)``, ``episodes`` and ``horizon``).

Usage: .venv/bin/python benchmarks/gridworld/exact_greedy.py OUT.json RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from fastadapt.experiment.runner import load_run


@torch.no_grad()
def main() -> None:
    torch.set_num_threads(1)
    rows = []
    for run in map(Path, sys.argv[2:]):
        cfg, learner, it = load_run(run)
        tasks = learner.task.all_tasks()
        env = learner.task.batched_env(len(tasks), 1)
        out = learner.rollout(env, tasks, 0, torch.Generator().manual_seed(0), True, False)
        ret = out["rewards"].reshape(len(tasks), learner.episodes, learner.horizon).sum(-1).double()
        # determinism check: a second pass with other seeds must give the same returns
        again = learner.rollout(env, tasks, 123, torch.Generator().manual_seed(1), True, False)["rewards"]
        assert torch.equal(again.reshape_as(out["rewards"]), out["rewards"]), "greedy rollout not deterministic"
        for i in range(learner.episodes):
            rows.append({"method": cfg.algo_entry.name, "run": run.name, "setting": {"episode": i + 1},
                         "mean": float(ret[:, i].mean()), "se": 0.0, "n": len(tasks), "exact": True,
                         "greedy": True, "checkpoint_iteration": it})
        rows.append({"method": cfg.algo_entry.name, "run": run.name, "setting": {"episodes": learner.episodes},
                     "mean": float(ret.sum(1).mean()), "se": 0.0, "n": len(tasks), "exact": True, "greedy": True,
                     "checkpoint_iteration": it, "per_goal_total": [round(float(x), 4) for x in ret.sum(1)],
                     "goals": [list(map(int, t.goal)) for t in tasks]})
        print(run.name, [round(float(ret[:, i].mean()), 3) for i in range(learner.episodes)],
              round(float(ret.sum(1).mean()), 3))
    Path(sys.argv[1]).write_text(json.dumps({"rows": rows}, indent=1))


if __name__ == "__main__":
    main()
