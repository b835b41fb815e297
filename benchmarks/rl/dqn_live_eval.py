"""For DQN runs trained with ``keep_best_train``: evaluate the *live* (last) Q-network next to the reported
best-training-return snapshot, with the same 20 evaluation episodes as ``fastadapt eval``.

    .venv/bin/python benchmarks/rl/dqn_live_eval.py /tmp/fastadapt-rl-runs/dqn-cartpole-s0 [...] \
        --dest benchmarks/rl/results

Writes ``DEST/<run name>/live_eval.json`` (snapshot mean, live mean, best training window return).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

torch.set_num_threads(1)
from fastadapt.experiment.runner import load_run  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--dest", default=str(Path(__file__).resolve().parent / "results"))
    args = ap.parse_args()
    for run in map(Path, args.runs):
        cfg, learner, iteration = load_run(run)
        snap = learner.evaluate(cfg.eval, cfg.train.seed)[0]
        best_train, q_best = learner.best_score, learner.q_best
        learner.q_best = None  # greedy() falls back to the live network
        live = learner.evaluate(cfg.eval, cfg.train.seed)[0]
        learner.q_best = q_best
        out = {"run": run.name, "checkpoint_iteration": iteration, "eval_seed": cfg.train.seed,
               "episodes": snap.n, "snapshot_mean": snap.mean, "live_mean": live.mean,
               "best_train_window_return": best_train}
        (Path(args.dest) / run.name).mkdir(parents=True, exist_ok=True)
        (Path(args.dest) / run.name / "live_eval.json").write_text(json.dumps(out, indent=1) + "\n")
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
