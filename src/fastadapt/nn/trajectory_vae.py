"""VariBAD's trajectory VAE: a recurrent encoder giving a Gaussian belief over a task latent ``m`` and
decoders of the rewards (and optionally the next states) given ``m``.

Zintgraf et al. 2020, "VariBAD: A Very Good Method for Bayes-Adaptive Deep RL via Meta-Learning" (ICLR),
sec. 3-4 and appendix; official code lmzintgraf/varibad (``models/encoder.py``, ``models/decoder.py``,
``vae.py``). Read, not copied.

Encoder ``q_phi(m | tau_{:t})``: each transition ``(a_{t-1}, r_t, s_t)`` (action that led to ``s_t``, the
reward received and the resulting state) is embedded (state -> ``state_embed``, reward -> ``reward_embed``,
one-hot action -> ``action_embed``, ReLU; ``action_embed = 0`` leaves the action out, as in the paper's
gridworld) and fed to a GRU; linear heads map the hidden state to the belief ``(mu_t, logvar_t)``. The
belief before any transition (``t = 0``) comes from the zero hidden state: ``q(m | tau_{:0})`` is learnt.

Decoder ``p_theta(r_{i+1} | s_i, a_i, s_{i+1}, m)``:

- ``reward_head="multihead"`` (the paper's gridworld): an MLP maps ``m`` to one output per discrete state;
  the prediction for a transition is the output at the index of ``s_{i+1}`` (``next_state_idx``);
- ``reward_head="conditional"``: an MLP over ``[m, embed(s_{i+1})]`` (optionally ``s_i`` and ``a_i``).

with a Bernoulli likelihood (targets in {0, 1}, e.g. "is this the goal reward") or a unit-variance Gaussian
(squared error). Optional state decoder ``p(s_{i+1} | s_i, a_i, m)`` (unit-variance Gaussian).

ELBO (paper eq. 9, "decode past and future"): for every encoder time ``t = 0..H`` of a trajectory of
length ``H`` (a whole BAMDP trial: here all episodes of one task),

    ELBO_t = E_{m ~ q(m | tau_{:t})} [ sum_{i=0}^{H-1} log p(r_{i+1} | s_i, a_i, s_{i+1}, m) ]
             - KL( q(m | tau_{:t}) || q(m | tau_{:t-1}) ),      q(m | tau_{:-1}) = N(0, I)

(the KL to the previous posterior is the official code's default for the gridworld). The loss is
``-sum_t ELBO_t`` averaged over trajectories (sums over time as in the official defaults), with
``kl_weight`` on the KL and ``reward_coef``/``state_coef`` on the reconstruction terms. ``m`` is sampled
with the reparameterisation trick from an explicit generator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from fastadapt.nn.mlp import MLP, _linear, default_generator, init_linear
from fastadapt.nn.recurrent import _init_gru

RewardHead = Literal["multihead", "conditional"]
Likelihood = Literal["bernoulli", "gaussian"]


def gaussian_kl(
    mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor
) -> torch.Tensor:
    """``KL(N(mu_q, e^logvar_q) || N(mu_p, e^logvar_p))`` of diagonal Gaussians, summed over the last dim.

    ``[..., L]`` inputs (broadcastable) -> ``[...]``:
    ``0.5 * sum(logvar_p - logvar_q + (e^logvar_q + (mu_q - mu_p)^2) / e^logvar_p - 1)``.
    """
    return 0.5 * (
        logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p).pow(2)) / logvar_p.exp() - 1.0
    ).sum(-1)


def belief_kls(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """VariBAD's KL terms for every encoder time: ``mu, logvar: [B, H+1, L] -> [B, H+1]``.

    ``t = 0``: ``KL(q_0 || N(0, I))``; ``t >= 1``: ``KL(q_t || q_{t-1})``.
    """
    prev_mu = torch.cat([torch.zeros_like(mu[:, :1]), mu[:, :-1]], dim=1)
    prev_lv = torch.cat([torch.zeros_like(logvar[:, :1]), logvar[:, :-1]], dim=1)
    return gaussian_kl(mu, logvar, prev_mu, prev_lv)


class _Embed(nn.Module):
    """``Linear -> ReLU`` feature embedding (``in_dim -> out_dim``)."""

    def __init__(self, in_dim: int, out_dim: int, gen: torch.Generator) -> None:
        super().__init__()
        self.fc = init_linear(_linear(in_dim, out_dim), math.sqrt(2.0), gen)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.fc(x))


class TrajectoryVAE(nn.Module):
    """VariBAD encoder + decoders (see the module docstring).

    Args:
        obs_dim: state features ``s: [..., obs_dim]``.
        n_actions: discrete actions (used by the action embedding / conditional decoders).
        latent_dim: dimension of ``m`` (paper gridworld: 5).
        hidden: GRU units (paper: 64).
        state_embed, reward_embed, action_embed: embedding widths (paper gridworld: 32, 8, 0; 0 = unused).
        reward_decoder: hidden widths of the reward decoder MLP (paper: (32, 32)).
        reward_head: ``"multihead"`` (one output per discrete state; needs ``n_states``) or ``"conditional"``.
        n_states: number of discrete states for ``"multihead"``.
        likelihood: ``"bernoulli"`` (reward targets in {0, 1}) or ``"gaussian"`` (unit variance).
        decoder_inputs_prev: conditional decoder also sees ``s_i`` and one-hot ``a_i``.
        decode_state: add a state decoder ``p(s_{i+1} | s_i, a_i, m)``.
        state_decoder: its hidden widths.
        generator: initialisation randomness (``None``: seeded with 0).
    """

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        latent_dim: int = 5,
        hidden: int = 64,
        *,
        state_embed: int = 32,
        reward_embed: int = 8,
        action_embed: int = 0,
        reward_decoder: Sequence[int] = (32, 32),
        reward_head: RewardHead = "multihead",
        n_states: int | None = None,
        likelihood: Likelihood = "bernoulli",
        decoder_inputs_prev: bool = False,
        decode_state: bool = False,
        state_decoder: Sequence[int] = (32, 32),
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        for name, v in (("obs_dim", obs_dim), ("n_actions", n_actions), ("latent_dim", latent_dim),
                        ("hidden", hidden), ("state_embed", state_embed), ("reward_embed", reward_embed)):
            if v < 1:
                raise ValueError(f"{name} must be >= 1, got {v}")
        if action_embed < 0:
            raise ValueError(f"action_embed must be >= 0, got {action_embed}")
        if reward_head not in ("multihead", "conditional"):
            raise ValueError(f"reward_head: expected 'multihead' or 'conditional', got {reward_head!r}")
        if likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"likelihood: expected 'bernoulli' or 'gaussian', got {likelihood!r}")
        if reward_head == "multihead" and (n_states is None or n_states < 1):
            raise ValueError("reward_head='multihead' needs n_states >= 1")
        gen = default_generator(generator)
        self.obs_dim, self.n_actions = int(obs_dim), int(n_actions)
        self.latent_dim, self.hidden = int(latent_dim), int(hidden)
        self.reward_head, self.likelihood = reward_head, likelihood
        self.n_states = None if n_states is None else int(n_states)
        self.decoder_inputs_prev = bool(decoder_inputs_prev)
        # encoder
        self.state_emb = _Embed(obs_dim, state_embed, gen)
        self.reward_emb = _Embed(1, reward_embed, gen)
        self.action_emb = _Embed(n_actions, action_embed, gen) if action_embed > 0 else None
        enc_in = state_embed + reward_embed + (action_embed if action_embed > 0 else 0)
        self.gru = _init_gru(nn.GRU(enc_in, hidden, batch_first=True), gen)
        self.mu_head = init_linear(_linear(hidden, latent_dim), 1.0, gen)
        self.logvar_head = init_linear(_linear(hidden, latent_dim), 1.0, gen)
        # reward decoder
        if reward_head == "multihead":
            self.reward_dec: nn.Module = MLP(latent_dim, int(n_states), tuple(reward_decoder), "relu", 1.0, gen)
            self.dec_state_emb: nn.Module | None = None
        else:
            self.dec_state_emb = _Embed(obs_dim, state_embed, gen)
            dec_in = latent_dim + state_embed + ((obs_dim + n_actions) if decoder_inputs_prev else 0)
            self.reward_dec = MLP(dec_in, 1, tuple(reward_decoder), "relu", 1.0, gen)
        self.state_dec = (
            MLP(latent_dim + obs_dim + n_actions, obs_dim, tuple(state_decoder), "relu", 1.0, gen)
            if decode_state
            else None
        )

    # ------------------------------------------------------------------ encoder
    def _beliefs(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mu_head(h), self.logvar_head(h)

    def prior(self, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Belief before any transition: ``(mu [B, L], logvar [B, L], h0 = zeros [B, hidden])``."""
        h = torch.zeros(batch, self.hidden, dtype=self.mu_head.weight.dtype)
        mu, lv = self._beliefs(h)
        return mu, lv, h

    def _enc_input(self, actions: torch.Tensor, rewards: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        parts = [self.state_emb(next_obs), self.reward_emb(rewards.unsqueeze(-1).to(next_obs.dtype))]
        if self.action_emb is not None:
            parts.append(self.action_emb(F.one_hot(actions.long(), self.n_actions).to(next_obs.dtype)))
        return torch.cat(parts, dim=-1)

    def encode_step(
        self, actions: torch.Tensor, rewards: torch.Tensor, next_obs: torch.Tensor, h: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Update the belief with one transition per row.

        ``actions: [B]`` (int), ``rewards: [B]``, ``next_obs: [B, obs_dim]``, ``h: [B, hidden]`` ->
        ``(mu [B, L], logvar [B, L], h' [B, hidden])``.
        """
        x = self._enc_input(actions, rewards, next_obs).unsqueeze(1)
        _, h2 = self.gru(x, h.unsqueeze(0).contiguous())
        h2 = h2.squeeze(0)
        mu, lv = self._beliefs(h2)
        return mu, lv, h2

    def encode(
        self, actions: torch.Tensor, rewards: torch.Tensor, next_obs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Beliefs after ``0..H`` transitions of whole trajectories (starting from the prior).

        ``actions: [B, H]``, ``rewards: [B, H]``, ``next_obs: [B, H, obs_dim]`` ->
        ``(mu [B, H+1, L], logvar [B, H+1, L])``; index 0 is the prior belief.
        """
        b = actions.shape[0]
        mu0, lv0, h0 = self.prior(b)
        y, _ = self.gru(self._enc_input(actions, rewards, next_obs), h0.unsqueeze(0))
        mu, lv = self._beliefs(y)
        return torch.cat([mu0.unsqueeze(1), mu], 1), torch.cat([lv0.unsqueeze(1), lv], 1)

    # ------------------------------------------------------------------ decoders
    def reward_output(
        self,
        m: torch.Tensor,
        next_obs: torch.Tensor,
        next_state_idx: torch.Tensor | None = None,
        obs: torch.Tensor | None = None,
        actions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Decoder output for every (latent, transition) pair: a logit (Bernoulli) or a mean (Gaussian).

        ``m: [B, K, L]`` (K latents per trajectory), transitions ``next_obs: [B, H, obs_dim]`` (plus
        ``next_state_idx: [B, H]`` for the multi-head decoder; ``obs: [B, H, obs_dim]`` and ``actions:
        [B, H]`` for the conditional decoder with ``decoder_inputs_prev``) -> ``[B, K, H]``.
        """
        b, k = m.shape[:2]
        h = next_obs.shape[1]
        if self.reward_head == "multihead":
            if next_state_idx is None:
                raise ValueError("multihead reward decoder needs next_state_idx [B, H]")
            out = self.reward_dec(m)  # [B, K, n_states]
            idx = next_state_idx.long().unsqueeze(1).expand(b, k, h)
            return out.gather(-1, idx)
        assert self.dec_state_emb is not None
        parts = [m.unsqueeze(2).expand(b, k, h, m.shape[-1]),
                 self.dec_state_emb(next_obs).unsqueeze(1).expand(b, k, h, -1)]
        if self.decoder_inputs_prev:
            if obs is None or actions is None:
                raise ValueError("decoder_inputs_prev needs obs [B, H, obs_dim] and actions [B, H]")
            prev = torch.cat([obs, F.one_hot(actions.long(), self.n_actions).to(obs.dtype)], -1)
            parts.append(prev.unsqueeze(1).expand(b, k, h, -1))
        return self.reward_dec(torch.cat(parts, -1)).squeeze(-1)

    def reward_log_lik(self, output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """``log p(r | ...)``: ``output [B, K, H]`` and ``targets [B, H]`` -> ``[B, K, H]``."""
        tgt = targets.unsqueeze(1).expand_as(output).to(output.dtype)
        if self.likelihood == "bernoulli":
            return -F.binary_cross_entropy_with_logits(output, tgt, reduction="none")
        return -0.5 * (output - tgt).pow(2) - 0.5 * math.log(2 * math.pi)

    def reward_probs(self, m: torch.Tensor) -> torch.Tensor:
        """Multi-head Bernoulli decoder: ``P(target = 1 | state, m)`` for every state, ``[..., n_states]``."""
        if self.reward_head != "multihead" or self.likelihood != "bernoulli":
            raise ValueError("reward_probs needs reward_head='multihead' and likelihood='bernoulli'")
        return torch.sigmoid(self.reward_dec(m))

    # ------------------------------------------------------------------ ELBO
    def elbo_terms(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        rewards: torch.Tensor,
        next_obs: torch.Tensor,
        generator: torch.Generator,
        *,
        reward_targets: torch.Tensor | None = None,
        next_state_idx: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Per-trajectory terms of ``-sum_t ELBO_t`` (paper eq. 9, all past and future transitions).

        Args:
            obs: ``s_i`` ``[B, H, obs_dim]``; actions ``a_i`` ``[B, H]``; rewards ``r_{i+1}`` ``[B, H]``
                (what the encoder sees); next_obs ``s_{i+1}`` ``[B, H, obs_dim]``.
            generator: randomness of the reparameterised samples ``m ~ q(m | tau_{:t})``.
            reward_targets: decoder targets ``[B, H]`` (default: ``rewards``; Bernoulli needs {0, 1}).
            next_state_idx: ``[B, H]`` discrete index of ``s_{i+1}`` (multi-head decoder).

        Returns ``{"reward_nll": [B], "state_nll": [B] (zeros without a state decoder), "kl": [B],
        "mu": [B, H+1, L], "logvar": [B, H+1, L]}`` where the NLLs are summed over ``t = 0..H`` and
        ``i = 0..H-1`` and ``kl`` over ``t``.
        """
        if obs.dim() != 3 or next_obs.shape != obs.shape:
            raise ValueError(f"obs/next_obs: expected equal [B, H, {self.obs_dim}], got {tuple(obs.shape)}, "
                             f"{tuple(next_obs.shape)}")
        b, h = obs.shape[:2]
        for name, t in (("actions", actions), ("rewards", rewards)):
            if t.shape != (b, h):
                raise ValueError(f"{name}: expected [{b}, {h}], got {tuple(t.shape)}")
        mu, logvar = self.encode(actions, rewards, next_obs)  # [B, H+1, L]
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype)
        m = mu + eps * torch.exp(0.5 * logvar)
        targets = rewards if reward_targets is None else reward_targets
        out = self.reward_output(m, next_obs, next_state_idx, obs, actions)  # [B, H+1, H]
        reward_nll = -self.reward_log_lik(out, targets).sum((1, 2))
        if self.state_dec is not None:
            k = m.shape[1]
            prev = torch.cat([obs, F.one_hot(actions.long(), self.n_actions).to(obs.dtype)], -1)
            x = torch.cat([m.unsqueeze(2).expand(b, k, h, -1), prev.unsqueeze(1).expand(b, k, h, -1)], -1)
            pred = self.state_dec(x)
            state_nll = 0.5 * (pred - next_obs.unsqueeze(1)).pow(2).sum((1, 2, 3))
        else:
            state_nll = torch.zeros(b, dtype=mu.dtype)
        kl = belief_kls(mu, logvar).sum(1)
        return {"reward_nll": reward_nll, "state_nll": state_nll, "kl": kl, "mu": mu, "logvar": logvar}

    def loss(
        self,
        terms: dict[str, torch.Tensor],
        kl_weight: float = 1.0,
        reward_coef: float = 1.0,
        state_coef: float = 1.0,
    ) -> torch.Tensor:
        """``mean_B(reward_coef * reward_nll + state_coef * state_nll + kl_weight * kl)`` (scalar)."""
        return (
            reward_coef * terms["reward_nll"] + state_coef * terms["state_nll"] + kl_weight * terms["kl"]
        ).mean()


__all__ = ["TrajectoryVAE", "belief_kls", "gaussian_kl"]
