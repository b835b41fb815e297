"""Deep Q-network (Mnih et al. 2015, Nature 518) with double-Q targets (van Hasselt et al. 2016).

Collection is epsilon-greedy with epsilon decaying linearly from ``eps_start`` to ``eps_end`` over
``exploration_steps`` env steps. Every ``train_freq`` vector steps, ``gradient_steps`` Adam steps on the
Huber loss between ``Q(s, a)`` and the target

    y = r + gamma (1 - terminated) Q_target(s', argmax_a' Q(s', a'))      (double DQN; ``double: false``
                                                                            uses max_a' Q_target(s', a'))

with the target network copied every ``target_update_interval`` gradient steps (or Polyak-averaged with
``tau < 1``). With ``lr_final`` set, the Adam learning rate decays linearly from ``lr`` to ``lr_final`` over
``lr_anneal_steps`` env steps (damps the late-training oscillation of DQN on small control tasks).

With ``keep_best_train: true`` the *evaluation* (greedy) policy is a copy of the Q-network taken at the end
of the iteration whose mean training return (last 20 finished epsilon-greedy episodes, the
``episode_return`` metric) was the highest so far (ties go to the later iteration); exploration and learning
always use the live network. The selection uses training episodes only, never evaluation episodes; it
guards against the late-training collapse of DQN on CartPole (see benchmarks/rl/README.md).

Metrics: ``env_steps``, ``episode_return``, ``q_loss``, ``q_mean``, ``epsilon``, ``lr`` (and
``best_train_return`` with ``keep_best_train``).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field

from fastadapt.algos.rl.common import (
    OffPolicyConfig,
    OffPolicyLearner,
    RLEvalConfig,
    check_finite,
    linear_schedule,
    load_section,
    soft_update,
)
from fastadapt.core.errors import ConfigError
from fastadapt.core.registry import register_algo
from fastadapt.nn.values import DiscreteQMLP
from fastadapt.ops.returns import td_targets


class DQNConfig(OffPolicyConfig):
    """The ``algo:`` section of DQN."""

    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(64, ge=1)
    eps_start: float = Field(1.0, ge=0, le=1)
    eps_end: float = Field(0.05, ge=0, le=1)
    exploration_steps: int = Field(10_000, ge=1, description="env steps of the linear epsilon decay")
    target_update_interval: int = Field(500, ge=1, description="gradient steps between target updates")
    tau: float = Field(1.0, gt=0, le=1, description="1.0 = hard copy")
    double: bool = Field(True, description="double-DQN targets")
    max_grad_norm: float = Field(10.0, gt=0)
    lr_final: float | None = Field(
        None, ge=0, description="if set, lr decays linearly from lr to lr_final over lr_anneal_steps env steps"
    )
    lr_anneal_steps: int = Field(100_000, ge=1, description="env steps of the linear lr decay")
    keep_best_train: bool = Field(
        False,
        description="evaluate the Q-network snapshot of the iteration with the best mean training return "
        "(last 20 training episodes; training data only)",
    )


class DQN(OffPolicyLearner):
    """Double DQN learner (see the module docstring)."""

    name = "dqn"

    def __init__(self, cfg: DQNConfig, task: Any, seed: int) -> None:
        super().__init__(cfg, task, seed)
        self.cfg: DQNConfig = cfg
        if not self.discrete:
            raise ConfigError(f"task.env_id: dqn needs a Discrete action space ({self.env_id} is continuous)")
        self.q = DiscreteQMLP(self.obs_dim, self.act_n, cfg.hidden, cfg.activation, generator=self.init_gen)
        self.q_target = copy.deepcopy(self.q)
        self.opt = torch.optim.Adam(self.q.parameters(), lr=cfg.lr)
        self.q_best = copy.deepcopy(self.q) if cfg.keep_best_train else None
        self.best_train = -math.inf

    def modules(self) -> dict[str, torch.nn.Module]:
        mods: dict[str, torch.nn.Module] = {"q": self.q, "q_target": self.q_target}
        if self.q_best is not None:
            mods["q_best"] = self.q_best
        return mods

    def extra_state(self) -> dict[str, Any]:
        if self.q_best is None:
            return {}
        return {"best_train": self.best_train if math.isfinite(self.best_train) else None}  # JSON-safe

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if self.q_best is not None:
            best = load_section(state, "best_train")
            self.best_train = -math.inf if best is None else float(best)

    def train_step(self, iteration: int) -> dict[str, float]:
        """One iteration of the shared off-policy loop; then, with ``keep_best_train``, snapshot the Q-network
        if the mean return of the last 20 training episodes (a full window) is the best so far."""
        m = super().train_step(iteration)
        if self.q_best is not None:
            window = self.stats.returns
            if len(window) == window.maxlen and m["episode_return"] >= self.best_train:
                self.best_train = m["episode_return"]
                self.q_best.load_state_dict(self.q.state_dict())
            m["best_train_return"] = self.best_train if math.isfinite(self.best_train) else 0.0
        return m

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt": self.opt}

    def epsilon(self) -> float:
        c = self.cfg
        return linear_schedule(c.eps_start, c.eps_end, self.env_steps / c.exploration_steps)

    def explore(self, obs: torch.Tensor) -> torch.Tensor:
        n = obs.shape[0]
        greedy = self.q(obs).argmax(-1)
        rand = torch.randint(0, self.act_n, (n,), generator=self.gen)
        coin = torch.rand(n, generator=self.gen) < self.epsilon()
        return torch.where(coin, rand, greedy)

    def greedy(self, obs: torch.Tensor) -> torch.Tensor:
        """Greedy actions of the live network, or of the best-training-return snapshot once one is taken."""
        if self.q_best is not None and math.isfinite(self.best_train):
            return self.q_best(obs).argmax(-1)
        return self.q(obs).argmax(-1)

    def current_lr(self) -> float:
        c = self.cfg
        if c.lr_final is None:
            return c.lr
        return linear_schedule(c.lr, c.lr_final, self.env_steps / c.lr_anneal_steps)

    def train_batch(self) -> dict[str, float]:
        cfg = self.cfg
        lr = self.current_lr()
        for group in self.opt.param_groups:
            group["lr"] = lr
        b = self.buffer.sample(cfg.batch_size, self.batch_gen)
        with torch.no_grad():
            q_next_t = self.q_target(b["next_obs"])
            if cfg.double:
                a_next = self.q(b["next_obs"]).argmax(-1, keepdim=True)
                next_v = q_next_t.gather(-1, a_next).squeeze(-1)
            else:
                next_v = q_next_t.max(-1).values
            y = td_targets(b["rewards"], next_v, cfg.gamma, b["terminated"])
        q = self.q(b["obs"]).gather(-1, b["actions"].long().unsqueeze(-1)).squeeze(-1)
        loss = F.smooth_l1_loss(q, y)
        check_finite("q_loss", loss)
        self.opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.q.parameters(), cfg.max_grad_norm)
        self.opt.step()
        if (self.grad_steps + 1) % cfg.target_update_interval == 0:
            soft_update(self.q_target, self.q, cfg.tau)
        return {"q_loss": float(loss.detach()), "q_mean": float(q.detach().mean()), "epsilon": self.epsilon(), "lr": lr}


@register_algo("dqn", family="rl", config=DQNConfig, eval_config=RLEvalConfig)
def build_dqn(cfg: DQNConfig, task: Any, seed: int) -> DQN:
    """Deep Q-network with double-Q targets and a target network (Mnih et al. 2015)."""
    return DQN(cfg, task, seed)


__all__ = ["DQN", "DQNConfig", "build_dqn"]
