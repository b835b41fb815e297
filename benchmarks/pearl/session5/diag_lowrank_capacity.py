"""Diagnostic: supervised capacity of diagonal vs rank-R precision product-of-Gaussians encoders on dense
nav2d goals (same episodes as diag_pog_capacity.py). The encoder's posterior z (dim L) is sampled and a linear
readout is trained to predict the goal; prints the RMSE of readout(posterior mean) for 1 and 2 context episodes.
Usage: python diag_lowrank_capacity.py L R     (R = 0: the paper's diagonal factors)
"""
import math, sys, torch
torch.set_num_threads(1)
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from diag_pog_capacity import episodes
from fastadapt.nn.mlp import MLP
import torch.nn.functional as F
L, R = int(sys.argv[1]), int(sys.argv[2])
gen = torch.Generator().manual_seed(0)
net = MLP(5, L + L + R * L, (64, 64), "relu", out_gain=1.0, generator=gen)
readout = torch.nn.Linear(L, 2)
opt = torch.optim.Adam([*net.parameters(), *readout.parameters()], lr=1e-3)
def post(c):
    o = net(c); mu_n = o[..., :L]; p_n = 1 / F.softplus(o[..., L:2*L]).clamp_min(1e-7)
    U = o[..., 2*L:].reshape(*o.shape[:-1], L, R)
    P = torch.diag_embed(p_n) + U @ U.transpose(-1, -2)   # [B,N,L,L]
    Lam = P.sum(-3) + 1e-6 * torch.eye(L)
    h = (P @ mu_n.unsqueeze(-1)).sum(-3)
    C = torch.linalg.cholesky(Lam)
    mu = torch.cholesky_solve(h, C).squeeze(-1)
    return mu, C
for step in range(3000):
    c, g = episodes(64, 1 + step % 2, gen)
    mu, C = post(c)
    # supervised: goal must be linear-readable from z; loss: E_q ||readout(z) - g||^2 + small KL-free
    eps = torch.randn(mu.shape, generator=gen)
    z = mu + torch.linalg.solve_triangular(C.transpose(-1, -2), eps.unsqueeze(-1), upper=True).squeeze(-1)
    loss = (readout(z) - g).pow(2).sum(-1).mean()
    opt.zero_grad(); loss.backward(); opt.step()
    if (step + 1) % 1000 == 0:
        with torch.no_grad():
            out = []
            for e in (1, 2):
                c, g = episodes(2000, e, torch.Generator().manual_seed(7))
                mu, C = post(c)
                out.append(f"{e} ep rmse={float((readout(mu) - g).pow(2).sum(-1).mean().sqrt()):.3f}")
            print(step + 1, *out, flush=True)
