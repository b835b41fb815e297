"""Diagnostic: does the PEARL posterior carry the goal, and where is the return lost?

Trains a config for N iterations, then on the meta-train tasks reports
- R^2 of a linear regression goal ~ posterior mean (contexts from the encoder buffer, as in training),
- mean posterior variance and the number of context transitions,
- return with z from (a) the prior, (b) the training-style posterior (encoder-buffer context),
  (c) the meta-test protocol (posterior after 1 / 2 deterministic episodes of the chain).
Usage: python diag_encoder.py [--config C] [--iterations N] [--set key=value ...]
"""
from __future__ import annotations

import argparse
import time

import torch

torch.set_num_threads(1)

from fastadapt.core.seeding import torch_gen  # noqa: E402
from fastadapt.nn.context_encoder import posterior_variance  # noqa: E402
from fastadapt.experiment.catalog import load_all  # noqa: E402
from fastadapt.experiment.config import load_config  # noqa: E402
from fastadapt.experiment.runner import build_learner  # noqa: E402


def r2(mu: torch.Tensor, goals: torch.Tensor) -> float:
    x = torch.cat([mu, torch.ones(len(mu), 1)], 1).double()
    sol = torch.linalg.lstsq(x, goals.double()).solution
    res = goals.double() - x @ sol
    return float(1 - res.pow(2).sum() / (goals.double() - goals.double().mean(0)).pow(2).sum())


@torch.no_grad()
def report(pl, tag: str, split: str = "train") -> None:
    gen = torch_gen(123, "diag")
    tasks = pl.train_tasks if split == "train" else list(pl.task.sample(40, 99, "test"))
    goals = torch.tensor([t.goal for t in tasks], dtype=torch.float32)
    out = [tag, split]
    if split == "train":
        idx = torch.arange(len(tasks))
        ctx = pl._context(pl.enc_buffer.sample(idx, pl.cfg.context_batch, gen))
        mu, var = pl.posterior(ctx)
        env = pl._env(len(tasks))
        env.set_tasks(tasks)
        z = pl._sample_z(mu, var, gen).unsqueeze(1)
        ep = pl.run_episode(env, z, gen, True)
        out.append(f"R2(enc-buffer)={r2(mu, goals):.2f} var={float(posterior_variance(mu, var).mean()):.3g} ret(train-post,det)={float(ep['rew'].sum(-1).mean()):.2f}")
    rets = pl.posterior_sampling(tasks, 3, 4, gen, True)  # [3, T, E]
    out.append("chain k=0/1/2: " + " / ".join(f"{float(r.mean()):.2f}" for r in rets))
    # posterior after one prior-z deterministic episode: R2
    from fastadapt.algos.metarl.pearl import make_batched_env
    env = make_batched_env(pl.task, len(tasks), 1)
    env.set_tasks(tasks)
    L = pl.cfg.latent_dim
    z = pl._sample_z(torch.zeros(len(tasks), 1, L), torch.ones(len(tasks), 1, L), gen)
    ep = pl.run_episode(env, z, gen, True)
    mu1, var1 = pl.posterior(pl._context(ep), ep["mask"])
    out.append(f"R2(1 det prior ep)={r2(mu1[:, 0], goals):.2f} var1={float(posterior_variance(mu1, var1).mean()):.3g}")
    print(" | ".join(out), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="pearl-navigation2d")
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--set", nargs="*", default=[])
    args = ap.parse_args()
    load_all()
    cfg = load_config(args.config, args.set, seed=0)
    pl = build_learner(cfg)
    c0 = time.process_time()
    for it in range(args.iterations):
        m = pl.train_step(it)
        print(it + 1, f"post={m['return_posterior']:.2f} prior={m['return_prior']:.2f} q={m['q_loss']:.1f} "
              f"kl={m['kl']:.2f} zvar={m['z_var']:.3g} cpu={time.process_time() - c0:.0f}", flush=True)
        if (it + 1) % args.every == 0:
            report(pl, f"it{it + 1}", "train")
            report(pl, f"it{it + 1}", "test")


if __name__ == "__main__":
    main()
