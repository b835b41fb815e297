"""Deep Q-network (Mnih et al. 2015, Nature 518) with double-Q targets (van Hasselt et al. 2016).

Collection is epsilon-greedy with epsilon decaying linearly from ``eps_start`` to ``eps_end`` over
``exploration_steps`` env steps. Every ``train_freq`` vector steps, ``gradient_steps`` Adam steps on the
Huber loss between ``Q(s, a)`` and the target

    y = r + gamma (1 - terminated) Q_target(s', argmax_a' Q(s', a'))      (double DQN; ``double: false``
                                                                            uses max_a' Q_target(s', a'))

or, with ``n_step: n > 1``, the n-step target ``y = sum_{i<k} gamma^i r_{t+i} + gamma^k (1 - terminated)
Q_target(s_{t+k}, argmax_a' Q(s_{t+k}, a'))`` with ``k = n`` (fewer where the episode ended first; Hessel
et al. 2018, Rainbow) — faster propagation of late consequences such as the cart reaching the track's edge.

with the target network copied every ``target_update_interval`` gradient steps (or Polyak-averaged with
``tau < 1``). With ``lr_final`` set, the Adam learning rate decays linearly from ``lr`` to ``lr_final`` over
``lr_anneal_steps`` env steps (damps the late-training oscillation of DQN on small control tasks).

Evaluation-policy options (at most one; each guards against the late-training collapse of DQN on CartPole, see
benchmarks/rl/README.md; exploration and learning always use the live network, and training is
bit-for-bit the same with or without them):

- ``keep_best_train: true``: the *evaluation* (greedy) policy is a copy of the Q-network taken at the end of
  the iteration whose mean training return (last 20 finished epsilon-greedy episodes, the
  ``episode_return`` metric) was the highest so far (ties go to the later iteration). Training data only.
- ``select_every: k > 0``: from iteration ``select_start`` on, every ``k`` iterations the live greedy policy
  plays ``select_episodes`` *validation* episodes (the same episode seeds at every check, from their own
  stream ``"select-episodes"``, disjoint from the evaluation episodes'); the evaluation policy is the
  snapshot with the best validation mean (ties go to the later check), as in model selection with
  separate evaluation episodes (e.g. Stable-Baselines3's EvalCallback). These env steps are interaction
  too: they are counted in ``total_env_steps`` (training + validation), which is what a step budget bounds.

- ``ensemble_iterations: [i1, i2, ...]``: the evaluation policy is the argmax of the *mean* Q-values of the
  Q-network copies taken at the end of those iterations (a snapshot ensemble, cf. Huang et al. 2017; no
  extra env steps). Averaging damps the idiosyncratic errors of a single late network, such as a slow drift
  of the cart that one network lets through in a few start states. Iterations not reached are skipped.

Metrics: ``env_steps``, ``episode_return``, ``q_loss``, ``q_mean``, ``epsilon``, ``lr`` (and
``best_train_return`` with ``keep_best_train``; ``validation_return`` at checks, ``best_validation_return``,
``total_env_steps`` with ``select_every``).
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
    evaluate_policy,
    linear_schedule,
    load_section,
    soft_update,
)
from fastadapt.core.errors import CheckpointError, ConfigError
from fastadapt.core.registry import register_algo
from fastadapt.core.types import Row
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
    n_step: int = Field(
        1, ge=1, description="n-step double-DQN targets (Hessel et al. 2018): n discounted rewards, then gamma^n "
        "times the bootstrap value; 1 = the one-step target"
    )
    keep_best_train: bool = Field(
        False,
        description="evaluate the Q-network snapshot of the iteration with the best mean training return "
        "(last 20 training episodes; training data only)",
    )
    select_every: int = Field(
        0, ge=0, description="iterations between validation checks of the greedy policy; the evaluated policy "
        "is the best-validated snapshot (0 = off; validation env steps count in total_env_steps)"
    )
    select_start: int = Field(1, ge=1, description="iteration of the first validation check")
    select_episodes: int = Field(4, ge=1, description="validation episodes per check (same seeds every check)")
    ensemble_iterations: tuple[int, ...] = Field(
        (), description="evaluate argmax of the mean Q of the networks saved at the end of these iterations"
    )


class DQN(OffPolicyLearner):
    """Double DQN learner (see the module docstring)."""

    name = "dqn"

    def __init__(self, cfg: DQNConfig, task: Any, seed: int) -> None:
        super().__init__(cfg, task, seed, n_step=cfg.n_step)
        self.cfg: DQNConfig = cfg
        if not self.discrete:
            raise ConfigError(f"task.env_id: dqn needs a Discrete action space ({self.env_id} is continuous)")
        self.q = DiscreteQMLP(self.obs_dim, self.act_n, cfg.hidden, cfg.activation, generator=self.init_gen)
        self.q_target = copy.deepcopy(self.q)
        self.opt = torch.optim.Adam(self.q.parameters(), lr=cfg.lr)
        if sum([cfg.keep_best_train, cfg.select_every > 0, len(cfg.ensemble_iterations) > 0]) > 1:
            raise ConfigError("algo.select_every/keep_best_train/ensemble_iterations: choose one evaluation policy")
        ens = cfg.ensemble_iterations
        if any(i < 1 for i in ens) or len(set(ens)) != len(ens):
            raise ConfigError(f"algo.ensemble_iterations: distinct iterations >= 1 expected, got {list(ens)}")
        # snapshot ensemble: one copy per listed iteration (filled when that iteration ends)
        self.q_snapshots = torch.nn.ModuleList(copy.deepcopy(self.q) for _ in cfg.ensemble_iterations)
        self.snapshots_taken = [False] * len(cfg.ensemble_iterations)
        self.q_best = copy.deepcopy(self.q) if cfg.keep_best_train or cfg.select_every else None
        self.best_score = -math.inf  # best training window (keep_best_train) or validation mean (select_every)
        self.select_env_steps = 0

    def modules(self) -> dict[str, torch.nn.Module]:
        mods: dict[str, torch.nn.Module] = {"q": self.q, "q_target": self.q_target}
        if self.cfg.ensemble_iterations:
            mods["q_snapshots"] = self.q_snapshots
        if self.q_best is not None:
            mods["q_best"] = self.q_best
        return mods

    def extra_state(self) -> dict[str, Any]:
        if self.cfg.ensemble_iterations:
            return {"snapshots_taken": list(self.snapshots_taken)}
        if self.q_best is None:
            return {}
        best = self.best_score if math.isfinite(self.best_score) else None  # JSON-safe
        if self.cfg.select_every:
            return {"best_validation": best, "select_env_steps": self.select_env_steps}
        return {"best_train": best}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if self.cfg.ensemble_iterations:
            taken = load_section(state, "snapshots_taken")
            if len(taken) != len(self.snapshots_taken):
                raise CheckpointError("learner state: ensemble snapshot flags do not fit ensemble_iterations")
            self.snapshots_taken = [bool(t) for t in taken]
            return
        if self.q_best is None:
            return
        best = load_section(state, "best_validation" if self.cfg.select_every else "best_train")
        self.best_score = -math.inf if best is None else float(best)
        if self.cfg.select_every:
            self.select_env_steps = int(load_section(state, "select_env_steps"))

    def _snapshot_if_best(self, score: float) -> None:
        if score >= self.best_score:
            self.best_score = score
            assert self.q_best is not None
            self.q_best.load_state_dict(self.q.state_dict())

    def validation_check_due(self, iteration: int) -> bool:
        c = self.cfg
        if c.select_every == 0 or iteration < c.select_start:
            return False
        return (iteration - c.select_start) % c.select_every == 0

    def train_step(self, iteration: int) -> dict[str, float]:
        """One iteration of the shared off-policy loop; then the snapshot selection, if any (module docstring):
        with ``keep_best_train`` when the last 20 training episodes (a full window) are the best so far, with
        ``select_every`` when this iteration's validation episodes are."""
        c = self.cfg
        m = super().train_step(iteration)
        if iteration in c.ensemble_iterations:
            k = c.ensemble_iterations.index(iteration)
            self.q_snapshots[k].load_state_dict(self.q.state_dict())
            self.snapshots_taken[k] = True
        best_key = None
        if c.keep_best_train:
            window = self.stats.returns
            if len(window) == window.maxlen:
                self._snapshot_if_best(m["episode_return"])
            best_key = "best_train_return"
        elif c.select_every:
            if self.validation_check_due(iteration):
                lengths: list[int] = []
                rets = evaluate_policy(self.task.make, lambda o: self.q(o).argmax(-1), self.obs_fn,
                                       c.select_episodes, self.seed, "select-episodes", lengths)
                self.select_env_steps += sum(lengths)
                m["validation_return"] = sum(rets) / len(rets)
                self._snapshot_if_best(m["validation_return"])
            best_key = "best_validation_return"
            m["total_env_steps"] = float(self.env_steps + self.select_env_steps)
        if best_key is not None:
            m[best_key] = self.best_score if math.isfinite(self.best_score) else 0.0
        return m

    def evaluate(self, cfg: RLEvalConfig | None, seed: int) -> list[Row]:
        """The shared greedy evaluation; with ``select_every`` the row also records ``total_env_steps``, with
        ``ensemble_iterations`` the iterations whose snapshots formed the evaluated ensemble."""
        rows = super().evaluate(cfg, seed)
        if self.cfg.ensemble_iterations:
            for r in rows:
                r.extra["ensemble_of_iterations"] = [
                    i for i, t in zip(self.cfg.ensemble_iterations, self.snapshots_taken) if t
                ]
        if self.cfg.select_every:
            for r in rows:
                r.extra["total_env_steps"] = self.env_steps + self.select_env_steps
                r.extra["validation_env_steps"] = self.select_env_steps
        return rows

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
        """Greedy actions of the live network; of the snapshot ensemble's mean Q once a snapshot is taken;
        of the best (training-return or validation) snapshot once one is taken."""
        if any(self.snapshots_taken):
            qs = [q(obs) for q, t in zip(self.q_snapshots, self.snapshots_taken) if t]
            return torch.stack(qs).mean(0).argmax(-1)
        if self.q_best is not None and math.isfinite(self.best_score):
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
            discount = b["discount"] if "discount" in b else cfg.gamma  # gamma^k for n-step transitions
            y = td_targets(b["rewards"], next_v, discount, b["terminated"])
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
