"""Diagnostic: PEARL's SAC with an oracle task variable (z = the goal, padded; no encoder).

If this does not approach the oracle return on the meta-train tasks, the RL part (not the encoder) is the
bottleneck. Usage: python diag_oracle_z.py [--iterations N] [--set key=value ...]
Prints per-iteration training returns (episodes collected with the oracle z) and CPU seconds.
"""
from __future__ import annotations

import argparse
import time

import torch

torch.set_num_threads(1)

from fastadapt.experiment.catalog import load_all  # noqa: E402
from fastadapt.experiment.config import load_config  # noqa: E402
from fastadapt.experiment.runner import build_learner  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="pearl-navigation2d")
    ap.add_argument("--iterations", type=int, default=40)
    ap.add_argument("--set", nargs="*", default=[])
    args = ap.parse_args()
    load_all()
    cfg = load_config(args.config, args.set, seed=0)
    pl = build_learner(cfg)
    goals = torch.tensor([t.goal for t in pl.train_tasks], dtype=torch.float32)  # [N, 2]
    L = pl.cfg.latent_dim
    last: dict[str, torch.Tensor] = {}
    orig_sample = pl.enc_buffer.sample

    def sample(idx, n, gen):
        last["idx"] = idx
        return orig_sample(idx, n, gen)

    def posterior(ctx, mask=None):
        g = goals[last["idx"]]
        mu = torch.zeros(*g.shape[:-1], L)
        mu[..., :2] = g * 2
        return mu, torch.full_like(mu, 1e-6)

    pl.enc_buffer.sample = sample
    pl.posterior = posterior
    c0 = time.process_time()
    for it in range(args.iterations):
        m = pl.train_step(it)
        print(it + 1, f"post={m['return_posterior']:.2f} prior={m['return_prior']:.2f} q={m['q_loss']:.1f}"
              f" cpu={time.process_time() - c0:.0f}", flush=True)


if __name__ == "__main__":
    main()
