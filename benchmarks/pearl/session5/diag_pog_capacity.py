"""Diagnostic: can the product-of-Gaussians encoder (supervised, no RL) infer a dense-nav2d goal from
one or two episodes of (s, a, r) transitions?

Episodes: from (0, 0), a constant random heading with a random speed in [0.3, 1] x max_action plus N(0, 0.3)
action noise (policy space [-1, 1]); goal ~ U[-0.5, 0.5]^2; reward -||s' - g||. The encoder (latent 2 = goal)
is trained to maximise log q(g | c) with q the normalised product of the per-transition Gaussians.
Prints the RMSE of the posterior mean on fresh episodes for 1 and 2 context episodes, next to the RMSE of
always guessing (0, 0).
Usage: python diag_pog_capacity.py [--steps N] [--hidden 64] [--next-obs]
"""
from __future__ import annotations

import argparse
import math

import torch

torch.set_num_threads(1)

from fastadapt.nn.context_encoder import ContextEncoder, gaussian_log_prob  # noqa: E402


def episodes(n: int, eps: int, gen: torch.Generator, H: int = 20, next_obs: bool = False):
    g = torch.rand(n, 2, generator=gen) - 0.5
    ctx = []
    for _ in range(eps):
        ang = torch.rand(n, generator=gen) * 2 * math.pi
        spd = 0.3 + 0.7 * torch.rand(n, generator=gen)
        d = torch.stack([ang.cos(), ang.sin()], -1) * spd[:, None]
        s = torch.zeros(n, 2)
        for _ in range(H):
            a = (d + 0.3 * torch.randn(n, 2, generator=gen)).clamp(-1, 1)
            s2 = s + 0.1 * a
            r = -(s2 - g).norm(dim=-1, keepdim=True)
            parts = [s, a, r] + ([s2] if next_obs else [])
            ctx.append(torch.cat(parts, -1))
            s = s2
    return torch.stack(ctx, 1), g


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--next-obs", action="store_true")
    args = ap.parse_args()
    gen = torch.Generator().manual_seed(0)
    d = 7 if args.next_obs else 5
    enc = ContextEncoder(d, 2, (args.hidden, args.hidden), generator=gen)
    opt = torch.optim.Adam(enc.parameters(), lr=1e-3)
    for step in range(args.steps):
        eps = 1 + step % 2
        c, g = episodes(64, eps, gen, next_obs=args.next_obs)
        mu, var = enc(c)
        loss = -gaussian_log_prob(g, mu, var).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % 1000 == 0:
            with torch.no_grad():
                out = []
                for eps in (1, 2):
                    c, g = episodes(2000, eps, torch.Generator().manual_seed(7), next_obs=args.next_obs)
                    mu, var = enc(c)
                    out.append(f"{eps} ep: rmse={float((mu - g).pow(2).sum(-1).mean().sqrt()):.3f}")
                base = float(g.pow(2).sum(-1).mean().sqrt())
                print(step + 1, f"nll={float(loss):.2f}", *out, f"guess-0 rmse={base:.3f}", flush=True)


if __name__ == "__main__":
    main()
