"""SNAIL building blocks: temporal-convolution (TC) and causal attention blocks (Mishra et al. 2018,
"A Simple Neural Attentive Meta-Learner", ICLR, arXiv 1707.03141, section 3 and appendix B).

All blocks map ``x: [B, T, C_in] -> [B, T, C_in + C_added]`` and are *causal*: the output at time ``t``
depends only on inputs at times ``<= t`` (tested). A policy over a trial history therefore gives, in one
forward pass over ``[B, T, ...]``, the action distribution at every step, and acting at step ``t`` only needs
the prefix.

- :class:`DenseBlock` — a causal dilated convolution (kernel 2) with a gated activation
  ``tanh(conv_f(x)) * sigmoid(conv_g(x))`` whose ``filters`` outputs are concatenated to the input.
- :class:`TCBlock` — ``ceil(log2 T)`` dense blocks with dilations ``1, 2, 4, ...`` (receptive field >= T).
- :class:`AttentionBlock` — single-head causal soft attention (keys/queries of size ``key_size``, values of
  size ``value_size``) whose read is concatenated to the input.
- :class:`SNAILActorCritic` — the SNAIL policy used for bandits/MDPs in the paper (appendix B.2): an input
  projection, ``TC, TC, attention`` (bandits: two TC blocks of 32 filters and one attention block 32/32),
  then linear policy and value heads; same input encoding and distribution API as
  :class:`fastadapt.nn.recurrent.RecurrentActorCritic`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fastadapt.nn.mlp import default_generator, init_linear


def _init_conv(conv: nn.Conv1d, generator: torch.Generator) -> nn.Conv1d:
    with torch.no_grad():
        nn.init.orthogonal_(conv.weight.view(conv.out_channels, -1), gain=1.0, generator=generator)
        if conv.bias is not None:
            conv.bias.zero_()
    return conv


class DenseBlock(nn.Module):
    """Causal dilated conv (kernel 2) with gated activation; ``[B, T, C] -> [B, T, C + filters]``."""

    def __init__(self, in_ch: int, dilation: int, filters: int, generator: torch.Generator) -> None:
        super().__init__()
        self.dilation = int(dilation)
        self.conv_f = _init_conv(nn.Conv1d(in_ch, filters, 2, dilation=dilation), generator)
        self.conv_g = _init_conv(nn.Conv1d(in_ch, filters, 2, dilation=dilation), generator)
        self.out_ch = in_ch + filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.pad(x.transpose(1, 2), (self.dilation, 0))  # left padding only: causal
        act = torch.tanh(self.conv_f(h)) * torch.sigmoid(self.conv_g(h))
        return torch.cat([x, act.transpose(1, 2)], dim=-1)


class TCBlock(nn.Module):
    """``ceil(log2(seq_len))`` dense blocks with dilations 1, 2, 4, ...; adds ``n * filters`` channels."""

    def __init__(self, in_ch: int, seq_len: int, filters: int, generator: torch.Generator) -> None:
        super().__init__()
        n = max(1, math.ceil(math.log2(max(seq_len, 2))))
        blocks = []
        ch = in_ch
        for i in range(n):
            blk = DenseBlock(ch, 2**i, filters, generator)
            blocks.append(blk)
            ch = blk.out_ch
        self.blocks = nn.ModuleList(blocks)
        self.out_ch = ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x)
        return x


class AttentionBlock(nn.Module):
    """Causal single-head soft attention; ``[B, T, C] -> [B, T, C + value_size]``."""

    def __init__(self, in_ch: int, key_size: int, value_size: int, generator: torch.Generator) -> None:
        super().__init__()
        self.q = init_linear(nn.Linear(in_ch, key_size), 1.0, generator)
        self.k = init_linear(nn.Linear(in_ch, key_size), 1.0, generator)
        self.v = init_linear(nn.Linear(in_ch, value_size), 1.0, generator)
        self.scale = 1.0 / math.sqrt(key_size)
        self.out_ch = in_ch + value_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        scores = self.q(x) @ self.k(x).transpose(1, 2) * self.scale  # [B, T, T]
        future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
        read = torch.softmax(scores, dim=-1) @ self.v(x)
        return torch.cat([x, read], dim=-1)


class SNAILActorCritic(nn.Module):
    """SNAIL policy and value over a trial history (Mishra et al. 2018, appendix B.2 for bandits/MDPs).

    Args:
        obs_dim: observation features; inputs are ``[obs, one_hot(prev a), prev r, prev done]``
            (``in_dim = obs_dim + n_actions + 2``), built by :meth:`make_input`.
        n_actions: number of discrete actions.
        seq_len: the trial length ``T`` (sets the TC blocks' depth).
        embed: width of the input projection.
        filters: filters per dense block of each TC block.
        key_size, value_size: the attention block's sizes.
        generator: initialisation randomness (``None``: a generator seeded with 0).

    ``forward(x [B, T, in_dim]) -> (logits [B, T, A], value [B, T])``; causal in time.
    """

    discrete = True

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        seq_len: int,
        *,
        embed: int = 32,
        filters: int = 32,
        key_size: int = 32,
        value_size: int = 32,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if min(obs_dim, n_actions, seq_len, embed, filters, key_size, value_size) < 1:
            raise ValueError("SNAILActorCritic: all sizes must be >= 1")
        gen = default_generator(generator)
        self.obs_dim, self.n_actions, self.seq_len = int(obs_dim), int(n_actions), int(seq_len)
        self.in_dim = self.obs_dim + self.n_actions + 2
        self.embed = init_linear(nn.Linear(self.in_dim, embed), math.sqrt(2.0), gen)
        self.tc1 = TCBlock(embed, seq_len, filters, gen)
        self.tc2 = TCBlock(self.tc1.out_ch, seq_len, filters, gen)
        self.att = AttentionBlock(self.tc2.out_ch, key_size, value_size, gen)
        self.pi_head = init_linear(nn.Linear(self.att.out_ch, n_actions), 0.01, gen)
        self.v_head = init_linear(nn.Linear(self.att.out_ch, 1), 1.0, gen)

    def make_input(
        self,
        obs: torch.Tensor,
        prev_action: torch.Tensor,
        prev_reward: torch.Tensor,
        prev_done: torch.Tensor,
        first: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``[obs, one_hot(prev_action), prev_reward, prev_done]``: ``[..., in_dim]`` (zeros where ``first``)."""
        if obs.shape[-1:] != (self.obs_dim,):
            raise ValueError(f"obs: expected [..., {self.obs_dim}], got {tuple(obs.shape)}")
        onehot = F.one_hot(prev_action.long().clamp(0, self.n_actions - 1), self.n_actions).float()
        extra = torch.stack([prev_reward.float(), prev_done.float()], dim=-1)
        if first is not None:
            keep = (~first.bool()).float().unsqueeze(-1)
            onehot, extra = onehot * keep, extra * keep
        return torch.cat([obs.float(), onehot, extra], dim=-1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x: [B, T, in_dim] -> (logits [B, T, A], value [B, T])``."""
        if x.dim() != 3 or x.shape[-1] != self.in_dim:
            raise ValueError(f"x: expected [B, T, {self.in_dim}], got {tuple(x.shape)}")
        h = F.elu(self.embed(x))
        h = self.att(self.tc2(self.tc1(h)))
        return self.pi_head(h), self.v_head(h).squeeze(-1)

    # distribution API (pure functions of out = (logits,)), as in fastadapt.nn.policies
    def sample(self, out: tuple[torch.Tensor, ...], generator: torch.Generator) -> torch.Tensor:
        """Actions ``[...]`` (int64), Gumbel-max with uniforms from ``generator``."""
        logits = out[0].detach()
        u = torch.rand(logits.shape, generator=generator, dtype=logits.dtype)
        gumbel = -torch.log((-torch.log(u.clamp_min(1e-20))).clamp_min(1e-20))
        return torch.argmax(logits + gumbel, dim=-1)

    def log_prob(self, out: tuple[torch.Tensor, ...], actions: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(out[0], dim=-1)
        return logp.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self, out: tuple[torch.Tensor, ...]) -> torch.Tensor:
        logp = F.log_softmax(out[0], dim=-1)
        return -(logp.exp() * logp).sum(-1)

    def mode(self, out: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return torch.argmax(out[0], dim=-1)


__all__ = ["AttentionBlock", "DenseBlock", "SNAILActorCritic", "TCBlock"]
