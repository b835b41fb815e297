"""Diagnostic: properties of saved MAML-TRPO initialisations on navigation2d (no training).

For each checkpoint: the policy's log-std, the pre-update mean action at the start state (0, 0), and, on one
fresh round of 20 meta-train tasks x 20 episodes (fixed seed), the mean pre-update return, the size of the
inner step ||phi_i - theta|| and the return after that one step. Shows whether the initialisation moved into
a region where the inner step is large (the over-sensitive directions the Fisher-only curvature favours).

usage: inspect_checkpoints.py RUN_DIR [RUN_DIR ...]   (every checkpoints/ckpt-* of each run)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch


def main() -> None:
    torch.set_num_threads(1)
    from fastadapt.algos.metarl.common import (
        adapt_params, detach_params, expand_params, sample_rollouts, shared_params,
    )
    from fastadapt.algos.metarl.maml_rl import inner_step_norm
    from fastadapt.experiment import catalog
    from fastadapt.experiment.checkpoints import read_checkpoint
    from fastadapt.experiment.config import load_config

    catalog.load_all()
    for run in sys.argv[1:]:
        run_dir = Path(run)
        cfg = load_config(str(run_dir / "config.yaml"))
        task = cfg.task_entry.build(cfg.task)
        for ck in sorted((run_dir / "checkpoints").glob("ckpt-*")):
            learner = cfg.algo_entry.build(cfg.algo, task, cfg.train.seed)
            _, state = read_checkpoint(ck)
            learner.load_state_dict(state["learner"])
            pol, c = learner.policy, learner.cfg
            tasks = task.sample(20, 12345, "train")
            theta = detach_params(expand_params(shared_params(pol), len(tasks)))
            ro = sample_rollouts(learner.sampler, tasks, None, 777, c)
            phi = detach_params(adapt_params(pol, theta, ro, c.inner_lr, "reinforce", c.gamma))
            post = sample_rollouts(learner.sampler, tasks, phi, 778, c)
            with torch.no_grad():
                mean0, log_std = pol(torch.zeros(1, 2))
            print(json.dumps({
                "run": run_dir.name, "checkpoint": ck.name, "log_std": [round(float(x), 3) for x in log_std[0]],
                "mean_action_at_origin": [round(float(x), 3) for x in mean0[0]],
                "pre_return": round(float(ro.task_returns().mean()), 2),
                "inner_step_norm": round(inner_step_norm(phi, theta), 3),
                "post_return": round(float(post.task_returns().mean()), 2),
            }), flush=True)


if __name__ == "__main__":
    main()
