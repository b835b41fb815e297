"""algos/common.py: schedule, optimizer state round trip, PPO clipped update."""

from __future__ import annotations

import pytest
import torch

from fastadapt.algos.common import linear_schedule, load_optimizer_state, optimizer_state, ppo_clip_update
from fastadapt.core.errors import NumericError


def test_linear_schedule_clamps() -> None:
    assert linear_schedule(1.0, 0.0, 0, 10) == 1.0
    assert linear_schedule(1.0, 0.0, 5, 10) == pytest.approx(0.5)
    assert linear_schedule(1.0, 0.0, 50, 10) == 0.0


def _toy() -> tuple[torch.nn.Parameter, torch.optim.Optimizer]:
    logits = torch.nn.Parameter(torch.zeros(3))
    return logits, torch.optim.Adam([logits], lr=0.05)


def _run(logits: torch.nn.Parameter, opt: torch.optim.Optimizer, target_kl: float | None = None,
         loss_scale: float = 1.0) -> dict[str, float]:
    gen = torch.Generator().manual_seed(0)
    actions = torch.tensor([0, 1, 2] * 20)
    adv = torch.where(actions == 0, 1.0, -0.5)
    old = torch.log_softmax(logits.detach(), -1)[actions]

    def evaluate(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        lp = torch.log_softmax(logits, -1)
        ent = -(lp.exp() * lp).sum()
        return lp[actions[idx]] * loss_scale, ent, torch.zeros(len(idx))

    return ppo_clip_update(evaluate, old, adv, torch.zeros(60), opt, [logits], clip=0.2, epochs=10, minibatches=3,
                           ent_coef=0.0, vf_coef=0.5, max_grad_norm=10.0, generator=gen, iteration=7,
                           target_kl=target_kl)


def test_ppo_update_moves_toward_positive_advantage_and_clips() -> None:
    logits, opt = _toy()
    stats = _run(logits, opt)
    p = torch.softmax(logits.detach(), -1)
    assert p[0] > 0.4 and p[1] < 0.31 and p[2] < 0.31
    assert 0.0 < stats["clip_frac"] <= 1.0 and stats["approx_kl"] > 0
    assert set(stats) == {"entropy", "approx_kl", "clip_frac", "value_loss"}


def test_ppo_target_kl_stops_early() -> None:
    a, opt_a = _toy()
    b, opt_b = _toy()
    _run(a, opt_a)
    _run(b, opt_b, target_kl=1e-4)
    steps = lambda o: int(next(iter(o.state.values()))["step"])  # noqa: E731
    assert steps(opt_b) < steps(opt_a) == 30


def test_ppo_nonfinite_loss_names_iteration() -> None:
    logits, opt = _toy()
    with pytest.raises(NumericError, match="7"):
        _run(logits, opt, loss_scale=float("nan"))


def test_optimizer_state_round_trip() -> None:
    logits, opt = _toy()
    _run(logits, opt)
    state = optimizer_state(opt)
    assert all(isinstance(k, str) for k in state["state"])
    fresh, opt2 = _toy()
    load_optimizer_state(opt2, state)
    for k, v in opt.state_dict()["state"][0].items():
        torch.testing.assert_close(opt2.state_dict()["state"][0][k], v)
    assert opt2.param_groups[0]["betas"] == opt.param_groups[0]["betas"]
