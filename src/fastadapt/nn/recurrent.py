"""Recurrent (GRU) policy and value function for RL² (Duan et al. 2016, arXiv 1611.02779).

RL² treats a whole *trial* (several episodes on one task) as one long episode of a recurrent agent. At
every step the network sees

    x_t = [obs_t, one_hot(a_{t-1}), r_{t-1}, d_{t-1}]          (Duan et al. 2016, section 2.2 / figure 1)

the current observation, the previous action (one-hot; zeros at the start of a trial), the previous reward
and the previous step's *done* flag (1 when the previous step ended an episode, so the agent knows a new
episode of the same task has begun). The hidden state carries across episode boundaries inside a trial and
is reset to zeros between trials: that memory is what lets the agent learn the task while acting in it.

:class:`RecurrentActorCritic` exposes the same pure distribution API as :mod:`fastadapt.nn.policies`
(``sample(out, generator)``, ``log_prob``, ``entropy``, ``mode``, ``kl`` as functions of ``out = (logits,)``)
and two ways to run the GRU with an explicit hidden state:

- :meth:`RecurrentActorCritic.step` — one time step for a batch of trials (collection):
  ``x: [B, in_dim], h: [B, state_size] -> (logits [B, A], value [B], h' [B, state_size])``;
- :meth:`RecurrentActorCritic.forward` — whole sequences (the PPO/TRPO update):
  ``x: [B, T, in_dim], h0: [B, state_size] -> (logits [B, T, A], value [B, T], h_T)``, optionally resetting
  rows to zero where ``trial_start: [B, T]`` is true (for sequences that concatenate several trials).

Both paths use the same ``torch.nn.GRU`` kernels, so a trial run step by step and the same trial run as one
sequence give the same outputs up to float rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fastadapt.nn.mlp import MLP, default_generator, init_linear


def _init_gru(gru: nn.GRU, generator: torch.Generator) -> nn.GRU:
    """Orthogonal init of each gate block of the input and recurrent weights (gain 1), zero biases."""
    hidden = gru.hidden_size
    with torch.no_grad():
        for name, p in gru.named_parameters():
            if name.startswith("weight"):
                for k in range(3):
                    nn.init.orthogonal_(p[k * hidden : (k + 1) * hidden], gain=1.0, generator=generator)
            else:
                p.zero_()
    return gru


class RecurrentActorCritic(nn.Module):
    """GRU policy (categorical actions) and GRU value function for RL².

    Args:
        obs_dim: observation features (a ``Discrete`` observation is one-hot encoded by the caller).
        n_actions: number of discrete actions.
        hidden: GRU hidden units (the RL² paper uses 256).
        shared: if True, one GRU feeds both heads (state_size = hidden); if False (default), the value
            function has its own GRU over the same inputs (state_size = 2 * hidden), so the value loss
            cannot disturb the policy's memory.
        head_hidden: hidden widths of the MLP heads on top of the GRU (empty: linear heads).
        critic_extra_dim: extra features given to the value GRU only (``critic_extra: [B, F]`` or
            ``[B, T, F]``), e.g. privileged task parameters for an asymmetric critic (Pinto et al. 2018);
            requires ``shared=False``. The policy never sees them.
        generator: initialisation randomness (``None``: a generator seeded with 0).

    Inputs are built by :meth:`make_input`; ``in_dim = obs_dim + n_actions + 2``.
    """

    discrete = True

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        hidden: int = 256,
        *,
        shared: bool = False,
        head_hidden: tuple[int, ...] = (),
        critic_extra_dim: int = 0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if obs_dim < 1:
            raise ValueError(f"obs_dim must be >= 1, got {obs_dim}")
        if n_actions < 1:
            raise ValueError(f"n_actions must be >= 1, got {n_actions}")
        if hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {hidden}")
        if critic_extra_dim < 0 or (critic_extra_dim and shared):
            raise ValueError("critic_extra_dim must be >= 0 and needs shared=False")
        gen = default_generator(generator)
        self.critic_extra_dim = int(critic_extra_dim)
        self.obs_dim = int(obs_dim)
        self.n_actions = int(n_actions)
        self.hidden = int(hidden)
        self.shared = bool(shared)
        self.in_dim = self.obs_dim + self.n_actions + 2
        self.actor_gru = _init_gru(nn.GRU(self.in_dim, hidden, batch_first=True), gen)
        self.critic_gru = (
            None
            if shared
            else _init_gru(nn.GRU(self.in_dim + self.critic_extra_dim, hidden, batch_first=True), gen)
        )
        if head_hidden:
            self.pi_head: nn.Module = MLP(hidden, n_actions, head_hidden, "tanh", 0.01, gen)
            self.v_head: nn.Module = MLP(hidden, 1, head_hidden, "tanh", 1.0, gen)
        else:
            self.pi_head = init_linear(nn.Linear(hidden, n_actions), 0.01, gen)
            self.v_head = init_linear(nn.Linear(hidden, 1), 1.0, gen)

    # ------------------------------------------------------------------ state and inputs
    @property
    def state_size(self) -> int:
        """Width of the explicit hidden state ``h: [B, state_size]``."""
        return self.hidden if self.shared else 2 * self.hidden

    def initial_state(self, batch: int) -> torch.Tensor:
        """The start-of-trial state: zeros ``[batch, state_size]``."""
        return torch.zeros(batch, self.state_size, dtype=self.pi_dtype)

    @property
    def pi_dtype(self) -> torch.dtype:
        return self.actor_gru.weight_hh_l0.dtype

    def make_input(
        self,
        obs: torch.Tensor,
        prev_action: torch.Tensor,
        prev_reward: torch.Tensor,
        prev_done: torch.Tensor,
        first: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``x = [obs, one_hot(prev_action), prev_reward, prev_done]``: ``[..., in_dim]``.

        Shapes: ``obs: [..., obs_dim]``, ``prev_action: [...]`` (int), ``prev_reward, prev_done: [...]``.
        ``first: [...]`` bool marks the first step of a trial, where the previous action/reward/done do not
        exist and are encoded as zeros.
        """
        if obs.shape[-1:] != (self.obs_dim,):
            raise ValueError(f"obs: expected [..., {self.obs_dim}], got {tuple(obs.shape)}")
        lead = obs.shape[:-1]
        for name, t in (("prev_action", prev_action), ("prev_reward", prev_reward), ("prev_done", prev_done)):
            if t.shape != lead:
                raise ValueError(f"{name}: expected shape {tuple(lead)}, got {tuple(t.shape)}")
        dtype = self.pi_dtype
        onehot = F.one_hot(prev_action.long().clamp(0, self.n_actions - 1), self.n_actions).to(dtype)
        extra = torch.stack([prev_reward.to(dtype), prev_done.to(dtype)], dim=-1)
        if first is not None:
            keep = (~first.bool()).to(dtype).unsqueeze(-1)
            onehot = onehot * keep
            extra = extra * keep
        return torch.cat([obs.to(dtype), onehot, extra], dim=-1)

    # ------------------------------------------------------------------ running the network
    def _split(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if h.dim() != 2 or h.shape[1] != self.state_size:
            raise ValueError(f"h: expected [B, {self.state_size}], got {tuple(h.shape)}")
        if self.shared:
            return h, None
        return h[:, : self.hidden], h[:, self.hidden :]

    def _join(self, ha: torch.Tensor, hc: torch.Tensor | None) -> torch.Tensor:
        return ha if hc is None else torch.cat([ha, hc], dim=-1)

    def _critic_input(self, x: torch.Tensor, extra: torch.Tensor | None) -> torch.Tensor:
        if self.critic_extra_dim == 0:
            if extra is not None:
                raise ValueError("critic_extra given but the model has critic_extra_dim=0")
            return x
        if extra is None:
            raise ValueError(f"critic_extra: expected [B, {self.critic_extra_dim}] or [B, T, ...]")
        if extra.dim() == 2:
            extra = extra.unsqueeze(1).expand(x.shape[0], x.shape[1], extra.shape[-1])
        if extra.shape != (*x.shape[:2], self.critic_extra_dim):
            raise ValueError(
                f"critic_extra: expected [{x.shape[0]}, ({x.shape[1]},) {self.critic_extra_dim}], "
                f"got {tuple(extra.shape)}"
            )
        return torch.cat([x, extra.to(x.dtype)], dim=-1)

    def _run(
        self, x: torch.Tensor, h: torch.Tensor, extra: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ha, hc = self._split(h)
        ya, ha2 = self.actor_gru(x, ha.unsqueeze(0).contiguous())
        if self.critic_gru is None:
            if extra is not None:
                raise ValueError("critic_extra needs a separate critic (shared=False)")
            yc, hc2 = ya, None
        else:
            assert hc is not None
            yc, hc2_ = self.critic_gru(self._critic_input(x, extra), hc.unsqueeze(0).contiguous())
            hc2 = hc2_.squeeze(0)
        logits = self.pi_head(ya)
        value = self.v_head(yc).squeeze(-1)
        return logits, value, self._join(ha2.squeeze(0), hc2)

    def forward(
        self,
        x: torch.Tensor,
        h0: torch.Tensor | None = None,
        trial_start: torch.Tensor | None = None,
        critic_extra: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run whole sequences.

        Args:
            x: inputs ``[B, T, in_dim]`` (see :meth:`make_input`).
            h0: state before the first step ``[B, state_size]`` (default: zeros, a fresh trial).
            trial_start: optional ``[B, T]`` bool; where true, the state is reset to zeros *before* that
                step (a new trial begins). Episode boundaries inside a trial must NOT be marked.
            critic_extra: value-GRU-only features ``[B, F]`` or ``[B, T, F]`` (see ``critic_extra_dim``).

        Returns:
            ``(logits [B, T, n_actions], value [B, T], h_T [B, state_size])``.
        """
        if x.dim() != 3 or x.shape[-1] != self.in_dim:
            raise ValueError(f"x: expected [B, T, {self.in_dim}], got {tuple(x.shape)}")
        b, t = x.shape[0], x.shape[1]
        h = self.initial_state(b) if h0 is None else h0
        if critic_extra is not None and critic_extra.dim() == 2:
            critic_extra = critic_extra.unsqueeze(1).expand(b, t, critic_extra.shape[-1])
        if trial_start is None:
            return self._run(x, h, critic_extra)
        if trial_start.shape != (b, t):
            raise ValueError(f"trial_start: expected shape {(b, t)}, got {tuple(trial_start.shape)}")
        # split the sequence at every time index where some row starts a new trial
        starts = trial_start.bool()
        cuts = [0] + [i for i in range(1, t) if bool(starts[:, i].any())] + [t]
        logits_parts, value_parts = [], []
        for lo, hi in zip(cuts[:-1], cuts[1:]):
            h = h * (~starts[:, lo]).to(h.dtype).unsqueeze(-1)
            ex = None if critic_extra is None else critic_extra[:, lo:hi]
            lg, v, h = self._run(x[:, lo:hi], h, ex)
            logits_parts.append(lg)
            value_parts.append(v)
        return torch.cat(logits_parts, dim=1), torch.cat(value_parts, dim=1), h

    def step(
        self, x: torch.Tensor, h: torch.Tensor, critic_extra: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One time step: ``x: [B, in_dim], h: [B, state_size] -> (logits [B, A], value [B], h')``.

        ``critic_extra: [B, F]`` when the model has ``critic_extra_dim = F``.
        """
        if x.dim() != 2 or x.shape[-1] != self.in_dim:
            raise ValueError(f"x: expected [B, {self.in_dim}], got {tuple(x.shape)}")
        logits, value, h2 = self._run(x.unsqueeze(1), h, critic_extra)
        return logits.squeeze(1), value.squeeze(1), h2

    def policy_step(self, x: torch.Tensor, h_actor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Actor only (acting without the value function, e.g. at meta-test time or during collection
        when values are computed afterwards with :meth:`forward`).

        ``x: [B, in_dim], h_actor: [B, hidden] -> (logits [B, A], h_actor' [B, hidden])``; the actor state
        is the first ``hidden`` columns of the full state (all of it when ``shared``).
        """
        if x.dim() != 2 or x.shape[-1] != self.in_dim:
            raise ValueError(f"x: expected [B, {self.in_dim}], got {tuple(x.shape)}")
        if h_actor.dim() != 2 or h_actor.shape[1] != self.hidden:
            raise ValueError(f"h_actor: expected [B, {self.hidden}], got {tuple(h_actor.shape)}")
        y, h2 = self.actor_gru(x.unsqueeze(1), h_actor.unsqueeze(0).contiguous())
        return self.pi_head(y.squeeze(1)), h2.squeeze(0)

    # ------------------------------------------------------------------ distribution API (pure)
    def _logits(self, out: tuple[torch.Tensor, ...]) -> torch.Tensor:
        if len(out) != 1 or out[0].shape[-1:] != (self.n_actions,):
            raise ValueError(f"out: expected (logits [..., {self.n_actions}],)")
        return out[0]

    def sample(self, out: tuple[torch.Tensor, ...], generator: torch.Generator) -> torch.Tensor:
        """Actions ``[...]`` (int64) by the Gumbel-max trick with uniforms from ``generator``."""
        logits = self._logits(out).detach()
        u = torch.rand(logits.shape, generator=generator, dtype=logits.dtype)
        gumbel = -torch.log((-torch.log(u.clamp_min(1e-20))).clamp_min(1e-20))
        return torch.argmax(logits + gumbel, dim=-1)

    def log_prob(self, out: tuple[torch.Tensor, ...], actions: torch.Tensor) -> torch.Tensor:
        """``log pi(a|h)``: ``[...]`` for ``actions: [...]``."""
        logp = F.log_softmax(self._logits(out), dim=-1)
        return logp.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self, out: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """``-sum_a p log p``: ``[...]``."""
        logp = F.log_softmax(self._logits(out), dim=-1)
        return -(logp.exp() * logp).sum(-1)

    def mode(self, out: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Greedy actions ``[...]``."""
        return torch.argmax(self._logits(out), dim=-1)

    def kl(self, out_p: tuple[torch.Tensor, ...], out_q: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """``KL(p || q)``: ``[...]``."""
        logp = F.log_softmax(self._logits(out_p), dim=-1)
        logq = F.log_softmax(self._logits(out_q), dim=-1)
        return (logp.exp() * (logp - logq)).sum(-1)


__all__ = ["RecurrentActorCritic"]
