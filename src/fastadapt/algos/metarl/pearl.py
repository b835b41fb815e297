"""PEARL: off-policy meta-RL with probabilistic context variables (Rakelly et al. 2019, arXiv 1903.08254).

Rakelly, Zhou, Quillen, Finn & Levine 2019, "Efficient Off-Policy Meta-Reinforcement Learning via
Probabilistic Context Variables" (algorithms 1 and 2; the authors' code katerakelly/oyster). Pieces:

- **Context encoder** :class:`fastadapt.nn.context_encoder.ContextEncoder`: per-transition Gaussian factors
  of ``c = (s, a, r[, s'])`` combined as a product of Gaussians, ``z ~ q(z | c)`` reparameterised.
- **SAC on [s, z]** as in the authors' code (Haarnoja et al. 2018, first version): twin soft Q-functions
  ``Q_1, Q_2(s, a, z)``, a state-value function ``V(s, z)`` with a Polyak-averaged target ``V'``, a
  tanh-Gaussian policy ``pi(a | s, z)``; fixed temperature ``alpha`` (1) with a ``reward_scale`` (no
  automatic entropy tuning, as in oyster)::

      L_Q  = sum_j E[(Q_j(s, a, z) - (reward_scale * r + gamma (1 - d) V'(s', z)))^2]
      L_V  = E[(V(s, z_) - (min_j Q_j(s, a~pi, z_) - alpha log pi(a | s, z_)))^2]          (z_ = stopgrad z)
      L_pi = E[alpha log pi(a | s, z_) - min_j Q_j(s, a, z_)] + 1e-3 (E[mu^2] + E[log sigma^2])

  With ``encoder_precision_rank = R > 0`` (not in the paper; default 0) each factor's precision is
  ``diag(1 / sigma_n^2) + U_n U_n^T`` and ``q(z | c)`` a full-covariance Gaussian: one dense-reward
  transition constrains the goal along an arbitrary direction, which diagonal factors cannot express
  (why PEARL barely adapted on dense 2D navigation: benchmarks/pearl/README.md, session 5).
  The encoder is trained by the critic's Bellman error (``z`` is not detached in ``L_Q``) plus the
  information bottleneck ``beta * sum_tasks KL(q(z | c) || N(0, I))`` (``kl_lambda``).
- **Multi-task off-policy replay**: one RL replay buffer per meta-train task, plus a separate *encoder
  buffer* per task holding only the most recently collected data of that task (cleared before every
  collection round; the paper's "sampler for the context is different from the RL batch", sec. 4.2).
  Each gradient step draws ``meta_batch`` tasks, a context batch from each task's encoder buffer and an RL
  batch from its replay buffer.
- **Data collection** (algorithm 1): before training, ``initial_episodes`` per train task with ``z`` from the
  prior; every iteration, for ``tasks_per_iter`` train tasks: ``prior_episodes`` with ``z ~ N(0, I)``
  (replay + encoder buffers), ``posterior_episodes`` with ``z ~ q(z | c)`` and ``c`` from the task's encoder
  buffer, resampled after each episode (replay + encoder buffers), and ``extra_episodes`` with the posterior
  that only go to the RL replay buffer.
- **Meta-test** (posterior sampling, sec. 4.3 / algorithm 2): on held-out tasks, ``z`` starts from the prior;
  after each episode the posterior is recomputed from all transitions collected so far on the task and a
  new ``z`` is sampled. Rows ``method="pearl"``, ``setting={"context_episodes": k}`` give the return of the
  episode played after ``k`` context episodes (k = 0 is an episode with ``z`` from the prior, so it equals the
  prior in distribution). Next to them: ``method="prior"`` (every episode with a fresh ``z ~ N(0, I)``, no
  inference) and ``method="oracle"`` (the task family's goal-knowing policy, where it has one).

All tasks of one collection round step together in the family's batched env (``batched_env(tasks, envs)``;
families without one, e.g. MuJoCo, get a :class:`LoopBatchedEnv` over their gymnasium envs), with one
batched policy forward on ``[tasks, envs, obs_dim + latent_dim]`` per time step.

Sparse rewards: as in oyster (``sparse_rewards=True`` for the sparse point robot), ``critic_reward="dense"``
trains the critic on the dense reward ``-||s' - goal||`` (read from ``info["dense_reward"]`` or computed from
the batched env's ``goals``; training-only privileged information) while the encoder's context and every
reported return use the env's sparse reward. Default ``"env"``: the critic sees the env reward.

Metrics of one ``train_step``: cumulative ``env_steps``, ``return_prior`` / ``return_posterior`` (mean return
of the episodes collected this iteration with ``z`` from the prior / the posterior), ``q_loss``, ``v_loss``,
``policy_loss``, ``kl`` (per task), ``z_var`` (mean posterior variance of the context batches).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, field_validator

from fastadapt.algos.metarl.common import load_optimizer_state, optimizer_state, require_task_distribution
from fastadapt.algos.rl.common import soft_update
from fastadapt.core.config import Section
from fastadapt.core.errors import CheckpointError, ConfigError, NumericError
from fastadapt.core.registry import register_algo
from fastadapt.core.seeding import get_state, np_rng, set_state, torch_gen
from fastadapt.core.types import Row
from fastadapt.nn.context_encoder import ContextEncoder, kl_to_standard_normal, posterior_variance, rsample_gaussian
from fastadapt.nn.policies import TanhGaussianPolicy
from fastadapt.nn.values import QMLP, ValueMLP


class PEARLConfig(Section):
    """The ``algo:`` section of PEARL. Defaults follow the authors' code (oyster ``configs/default.py``);
    collection budgets are counted in episodes (oyster counts steps: steps / max_path_length)."""

    latent_dim: int = Field(5, ge=1, description="size of the task variable z")
    hidden: tuple[int, ...] = Field((300, 300, 300), description="hidden widths of policy, Q and V")
    encoder_hidden: tuple[int, ...] = Field((200, 200, 200), description="hidden widths of the encoder")
    activation: Literal["relu", "tanh", "elu", "gelu", "silu"] = "relu"
    num_train_tasks: int = Field(80, ge=1, description="fixed meta-train tasks (one replay buffer each)")
    meta_batch: int = Field(16, ge=1, description="tasks per gradient step")
    tasks_per_iter: int = Field(5, ge=1, description="tasks whose data is (re)collected per iteration")
    initial_episodes: int = Field(10, ge=0, description="episodes per train task before training (z ~ prior)")
    prior_episodes: int = Field(10, ge=0, description="per iteration and task, z ~ prior (replay + encoder)")
    posterior_episodes: int = Field(0, ge=0, description="per iteration and task, z ~ posterior (replay + encoder)")
    extra_episodes: int = Field(10, ge=0, description="per iteration and task, z ~ posterior (replay only)")
    grad_steps_per_iter: int = Field(2000, ge=1)
    batch_size: int = Field(256, ge=1, description="RL transitions per task per gradient step")
    context_batch: int = Field(64, ge=1, description="context transitions per task (embedding_batch_size)")
    buffer_size: int = Field(100_000, ge=1, description="capacity of each task's replay buffer")
    gamma: float = Field(0.99, ge=0, le=1)
    tau: float = Field(0.005, gt=0, le=1, description="Polyak rate of the target V")
    policy_lr: float = Field(3e-4, gt=0)
    q_lr: float = Field(3e-4, gt=0)
    v_lr: float = Field(3e-4, gt=0)
    context_lr: float = Field(3e-4, gt=0)
    reward_scale: float = Field(5.0, gt=0, description="scales rewards in the Bellman target (temperature)")
    alpha: float = Field(1.0, gt=0, description="fixed entropy temperature (oyster: 1, tuned via reward_scale)")
    kl_lambda: float = Field(0.1, ge=0, description="beta, weight of the KL information bottleneck")
    information_bottleneck: bool = Field(
        True, description="False: deterministic z = mean of the per-transition means, no KL (ablation)"
    )
    use_next_obs: bool = Field(False, description="context transitions include s'")
    encoder_precision_rank: int = Field(
        0,
        ge=0,
        description="R > 0: each context factor's precision is diag + rank-R (U_n U_n^T), so one transition "
        "can constrain z along any direction (dense distance rewards need it); 0 = the paper's diagonal factors",
    )
    policy_mean_reg: float = Field(1e-3, ge=0)
    policy_std_reg: float = Field(1e-3, ge=0)
    critic_reward: Literal["env", "dense"] = Field(
        "env",
        description="'dense': the critic learns from the dense reward -||s'-goal|| (PEARL's sparse point robot "
        "code); context and returns use the env reward",
    )

    @field_validator("hidden", "encoder_hidden", mode="before")
    @classmethod
    def _wrap(cls, v: Any) -> Any:
        return (v,) if isinstance(v, int) else v


class PEARLEvalConfig(Section):
    """The ``eval:`` section: posterior sampling on held-out tasks (Rakelly et al. 2019, sec. 4.3)."""

    test_tasks: int = Field(20, ge=2, description="held-out tasks (split='test')")
    chains_per_task: int = Field(
        10, ge=1, description="independent posterior-sampling runs per task (averaged per task)"
    )
    context_episodes: list[int] = Field(default_factory=lambda: [0, 1, 2])
    deterministic: bool = Field(True, description="act with the policy mean (z is still sampled)")
    baselines: list[Literal["prior", "oracle"]] = Field(default_factory=lambda: ["prior", "oracle"])

    @field_validator("context_episodes", "baselines", mode="before")
    @classmethod
    def _wrap(cls, v: Any) -> Any:
        return [v] if isinstance(v, (int, str)) else v

    @field_validator("context_episodes")
    @classmethod
    def _nonneg(cls, v: list[int]) -> list[int]:
        if not v or any(k < 0 for k in v):
            raise ValueError("context_episodes must be a non-empty list of integers >= 0")
        return sorted(set(v))


# ------------------------------------------------------------------------------------ replay buffers


class TaskBuffers:
    """One ring buffer per task, stored as tensors ``[tasks, capacity, ...]``.

    Fields: ``obs, next_obs [N, C, obs_dim]``, ``act [N, C, act_dim]``, ``rew`` (env reward, used by the
    context), ``crew`` (critic reward), ``term [N, C]``. ``sample(idx, n, gen)`` draws ``n`` transitions
    uniformly with replacement from each listed task's filled part -> ``{field: [len(idx), n, ...]}``.
    """

    FIELDS = ("obs", "act", "rew", "crew", "next_obs", "term")

    def __init__(self, num_tasks: int, capacity: int, obs_dim: int, act_dim: int) -> None:
        self.num_tasks, self.capacity = int(num_tasks), int(capacity)
        self.dims = {"obs": (obs_dim,), "act": (act_dim,), "rew": (), "crew": (), "next_obs": (obs_dim,), "term": ()}
        self.data = {k: torch.zeros(num_tasks, capacity, *d) for k, d in self.dims.items()}
        self.size = torch.zeros(num_tasks, dtype=torch.long)
        self.ptr = torch.zeros(num_tasks, dtype=torch.long)

    def clear(self, idx: Sequence[int]) -> None:
        for i in idx:
            self.size[i] = 0
            self.ptr[i] = 0

    def add(self, idx: Sequence[int], batch: dict[str, torch.Tensor], mask: torch.Tensor) -> None:
        """Add transitions: ``batch[field]: [len(idx), M, ...]``, ``mask [len(idx), M]`` (1 = valid)."""
        for row, i in enumerate(idx):
            valid = mask[row] > 0
            n = int(valid.sum())
            if n == 0:
                continue
            if n > self.capacity:  # only the newest `capacity` transitions survive
                keep = torch.nonzero(valid).squeeze(-1)[-self.capacity :]
                valid = torch.zeros_like(valid)
                valid[keep] = True
                n = self.capacity
            pos = (int(self.ptr[i]) + torch.arange(n)) % self.capacity
            for k in self.FIELDS:
                self.data[k][i, pos] = batch[k][row][valid]
            self.ptr[i] = (int(self.ptr[i]) + n) % self.capacity
            self.size[i] = min(self.capacity, int(self.size[i]) + n)

    def sample(self, idx: torch.Tensor, n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        sizes = self.size[idx]
        if bool((sizes == 0).any()):
            raise NumericError("empty task buffer")
        pos = (torch.rand(len(idx), n, generator=gen) * sizes[:, None]).long().clamp_max(sizes[:, None] - 1)
        rows = idx[:, None].expand(len(idx), n)
        return {k: v[rows, pos] for k, v in self.data.items()}

    def state_dict(self) -> dict[str, Any]:
        top = int(self.size.max()) if self.num_tasks else 0
        return {
            "data": {k: v[:, :top].clone() for k, v in self.data.items()},
            "size": self.size.clone(),
            "ptr": self.ptr.clone(),
        }

    def load_state_dict(self, s: dict[str, Any]) -> None:
        for k in self.FIELDS:
            t = torch.as_tensor(s["data"][k])
            self.data[k].zero_()
            self.data[k][:, : t.shape[1]] = t
        self.size = torch.as_tensor(s["size"]).long().clone()
        self.ptr = torch.as_tensor(s["ptr"]).long().clone()


# --------------------------------------------------------------------------- looped env (MuJoCo families)


class LoopBatchedEnv:
    """The :class:`~fastadapt.core.protocols.BatchedEnv` protocol over ``num_tasks x num_envs`` gymnasium envs
    of a family without a batched env (MuJoCo), stepped in a Python loop.

    Env ``i`` gets task ``tasks[i // num_envs]`` through ``reset(seed=seed + i, options={"task": ...})``.
    No auto-reset: an env whose episode ended is not stepped again (its reward is 0 and its observation
    frozen until the next ``reset``).
    """

    def __init__(self, family: Any, num_tasks: int, num_envs: int) -> None:
        self.num_tasks, self.num_envs = int(num_tasks), int(num_envs)
        self.envs = [family.make_env() for _ in range(self.num_tasks * self.num_envs)]
        self.observation_space = self.envs[0].observation_space
        self.action_space = self.envs[0].action_space
        steps = getattr(family, "max_episode_steps", None) or getattr(family, "horizon", None)
        if steps is None:
            raise ConfigError("task: the family states no horizon (max_episode_steps)")
        self.max_episode_steps = int(steps)
        self._tasks: list[Any] | None = None
        self._obs = np.zeros((len(self.envs), int(math.prod(self.observation_space.shape))), np.float32)
        self._done = np.zeros(len(self.envs), dtype=bool)

    def set_tasks(self, tasks: Sequence[Any]) -> None:
        if len(tasks) != self.num_tasks:
            raise ConfigError(f"LoopBatchedEnv: expected {self.num_tasks} tasks, got {len(tasks)}")
        self._tasks = list(tasks)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        if self._tasks is None:
            raise ConfigError("LoopBatchedEnv: call set_tasks() before reset()")
        for i, env in enumerate(self.envs):
            o, _ = env.reset(
                seed=None if seed is None else int(seed) + i, options={"task": self._tasks[i // self.num_envs]}
            )
            self._obs[i] = np.asarray(o, np.float32).reshape(-1)
        self._done[:] = False
        return torch.from_numpy(self._obs.copy()).view(self.num_tasks, self.num_envs, -1)

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        a = actions.detach().cpu().numpy().astype(np.float32).reshape(len(self.envs), -1)
        n = len(self.envs)
        rew, term, trunc = np.zeros(n, np.float32), np.zeros(n, bool), np.zeros(n, bool)
        for i, env in enumerate(self.envs):
            if self._done[i]:
                continue
            o, r, te, tr, _ = env.step(a[i])
            self._obs[i] = np.asarray(o, np.float32).reshape(-1)
            rew[i], term[i], trunc[i] = r, te, tr
            self._done[i] = te or tr
        shape = (self.num_tasks, self.num_envs)
        return (
            torch.from_numpy(self._obs.copy()).view(*shape, -1),
            torch.from_numpy(rew).view(shape),
            torch.from_numpy(term).view(shape),
            torch.from_numpy(trunc).view(shape),
            {},
        )

    def close(self) -> None:
        for env in self.envs:
            env.close()


def make_batched_env(task: Any, num_tasks: int, num_envs: int) -> Any:
    """The family's own batched env, else a :class:`LoopBatchedEnv` over its ``make_env``."""
    if hasattr(task, "batched_env"):
        return task.batched_env(num_tasks, num_envs)
    return LoopBatchedEnv(task, num_tasks, num_envs)


# ----------------------------------------------------------------------------------------- learner


class PEARL:
    """PEARL learner on a meta-RL task family with a batched env (``sample`` + ``batched_env``)."""

    key_metric = "return_posterior"

    def __init__(self, cfg: PEARLConfig, task: Any, seed: int) -> None:
        require_task_distribution(task, "pearl")
        import gymnasium as gym

        self.cfg, self.task, self.seed = cfg, task, int(seed)
        probe = make_batched_env(task, 1, 1)
        if not isinstance(probe.action_space, gym.spaces.Box) or not isinstance(probe.observation_space, gym.spaces.Box):
            raise ConfigError("task: pearl needs Box observation and action spaces")
        self.obs_dim = int(math.prod(probe.observation_space.shape))
        self.act_dim = int(math.prod(probe.action_space.shape))
        self.horizon = int(probe.max_episode_steps)
        low = torch.as_tensor(probe.action_space.low, dtype=torch.float32).reshape(-1)
        high = torch.as_tensor(probe.action_space.high, dtype=torch.float32).reshape(-1)
        self.train_tasks = list(task.sample(cfg.num_train_tasks, self.seed, "train"))
        if cfg.tasks_per_iter > cfg.num_train_tasks:
            raise ConfigError("algo.tasks_per_iter must be <= algo.num_train_tasks")
        if cfg.prior_episodes + cfg.posterior_episodes == 0 and cfg.initial_episodes == 0:
            raise ConfigError("algo: no data would ever reach the encoder buffers (all episode counts are 0)")

        L, od, ad = cfg.latent_dim, self.obs_dim, self.act_dim
        g = torch_gen(self.seed, "pearl-init")
        self.context_dim = od + ad + 1 + (od if cfg.use_next_obs else 0)
        self.encoder = ContextEncoder(
            self.context_dim, L, cfg.encoder_hidden, cfg.activation, precision_rank=cfg.encoder_precision_rank, generator=g
        )
        # the policy acts in [-1, 1]^act_dim (oyster wraps envs in NormalizedBoxEnv); env actions are rescaled
        self.act_scale, self.act_bias = (high - low) / 2.0, (high + low) / 2.0
        ones = torch.ones(ad)
        self.actor = TanhGaussianPolicy(od + L, ad, -ones, ones, cfg.hidden, cfg.activation, generator=g)
        self.q1 = QMLP(od + L, ad, cfg.hidden, cfg.activation, generator=g)
        self.q2 = QMLP(od + L, ad, cfg.hidden, cfg.activation, generator=g)
        self.v = ValueMLP(od + L, cfg.hidden, cfg.activation, generator=g)
        self.v_target = copy.deepcopy(self.v)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.policy_lr, foreach=True)
        self.q_opt = torch.optim.Adam([*self.q1.parameters(), *self.q2.parameters()], lr=cfg.q_lr, foreach=True)
        self.v_opt = torch.optim.Adam(self.v.parameters(), lr=cfg.v_lr, foreach=True)
        self.enc_opt = torch.optim.Adam(self.encoder.parameters(), lr=cfg.context_lr, foreach=True)

        n = len(self.train_tasks)
        self.replay = TaskBuffers(n, cfg.buffer_size, od, ad)
        enc_cap = max(1, (cfg.initial_episodes + cfg.prior_episodes + cfg.posterior_episodes)) * self.horizon
        self.enc_buffer = TaskBuffers(n, enc_cap, od, ad)

        self.rng = np_rng(self.seed, "pearl-tasks")
        self.collect_gen = torch_gen(self.seed, "pearl-collect")
        self.update_gen = torch_gen(self.seed, "pearl-update")
        self.env_steps = 0
        self.grad_steps = 0
        self.iterations_done = 0
        self.initialized = False
        self._envs: dict[tuple[int, int], Any] = {}

    # ------------------------------------------------------------------------------------- helpers
    def _env(self, num_tasks: int, num_envs: int = 1) -> Any:
        key = (num_tasks, num_envs)
        if key not in self._envs:
            self._envs[key] = make_batched_env(self.task, num_tasks, num_envs)
        return self._envs[key]

    def _context(self, b: dict[str, torch.Tensor]) -> torch.Tensor:
        """Context features ``[..., context_dim]`` = ``[s, a, r(, s')]`` from buffer fields."""
        parts = [b["obs"], b["act"], b["rew"].unsqueeze(-1)]
        if self.cfg.use_next_obs:
            parts.append(b["next_obs"])
        return torch.cat(parts, -1)

    def posterior(self, context: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``q(z | c)``: ``context [..., N, d]`` -> ``(mu, var) [..., L]`` (variance 0 without the bottleneck;
        with ``encoder_precision_rank > 0`` the second item is a ``scale [..., L, L]``, ``Sigma = scale scale^T``)."""
        if self.cfg.information_bottleneck:
            return self.encoder(context, mask)
        mu_n, _ = self.encoder.factors(context)
        if mask is None:
            mu = mu_n.mean(-2)
        else:
            m = mask.to(mu_n.dtype).unsqueeze(-1)
            mu = (mu_n * m).sum(-2) / m.sum(-2).clamp_min(1.0)
        return mu, torch.zeros_like(mu)

    def _sample_z(self, mu: torch.Tensor, var: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return rsample_gaussian(mu, var, gen)

    def _dense_reward(self, env: Any, next_obs: torch.Tensor, info: Any) -> torch.Tensor:
        if isinstance(info, dict) and "dense_reward" in info:
            return torch.as_tensor(info["dense_reward"]).float()
        goals = getattr(env, "goals", None)
        if goals is None:
            raise ConfigError("algo.critic_reward=dense: the env reports no info['dense_reward'] and has no goals")
        return -(next_obs - goals.to(next_obs.dtype)).norm(dim=-1)

    @torch.no_grad()
    def run_episode(
        self, env: Any, z: torch.Tensor, gen: torch.Generator, deterministic: bool = False, seed: int = 0
    ) -> dict[str, torch.Tensor]:
        """One episode of every ``[tasks, envs]`` env with fixed ``z [T, E, L]``; ``seed`` goes to ``env.reset``
        (stochastic simulators such as MuJoCo; the navigation envs are deterministic).

        Returns ``obs, next_obs [T, E, H, obs_dim]``, ``act [T, E, H, act_dim]`` (the policy's actions in
        ``[-1, 1]``; the env gets them rescaled to its bounds), ``rew`` (env reward),
        ``crew`` (critic reward), ``term``, ``mask [T, E, H]`` (1 while the episode runs).
        """
        obs = env.reset(seed=int(seed) % (2**31 - 1 - env.num_tasks * env.num_envs)).float()
        obs = obs.reshape(env.num_tasks, env.num_envs, -1)
        alive = torch.ones(env.num_tasks, env.num_envs)
        keys = ("obs", "act", "rew", "crew", "next_obs", "term", "mask")
        out: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
        for _ in range(self.horizon):
            x = torch.cat([obs, z], -1)
            pout = self.actor(x)
            a = self.actor.mode(pout) if deterministic else self.actor.sample(pout, gen)
            nxt, r, term, trunc, info = env.step(a * self.act_scale + self.act_bias)
            nxt = nxt.float().reshape(env.num_tasks, env.num_envs, -1)
            r = r.float()
            crew = self._dense_reward(env, nxt, info) if self.cfg.critic_reward == "dense" else r
            for k, v in zip(keys, (obs, a, r, crew, nxt, term.float(), alive)):
                out[k].append(v.clone())
            alive = alive * (1.0 - (term | trunc).float())
            obs = nxt
            if not bool(alive.any()):
                break
        res = {k: torch.stack(v, 2) for k, v in out.items()}
        res["rew"] = res["rew"] * res["mask"]
        return res

    def _check(self, name: str, t: torch.Tensor) -> None:
        if not bool(torch.isfinite(t).all()):
            raise NumericError(name, self.iterations_done)

    # ------------------------------------------------------------------------------------ collection
    def _collect(self, idx: np.ndarray, episodes: int, mode: str, to_enc: bool) -> list[float]:
        """``episodes`` episodes on train tasks ``idx`` (all at once); ``mode`` "prior" or "posterior"."""
        if episodes == 0:
            return []
        env = self._env(len(idx))
        env.set_tasks([self.train_tasks[i] for i in idx])
        idx_t = torch.as_tensor(idx, dtype=torch.long)
        L = self.cfg.latent_dim
        rets = []
        for _ in range(episodes):
            if mode == "prior" or bool((self.enc_buffer.size[idx_t] == 0).any()):
                mu, var = torch.zeros(len(idx), L), torch.ones(len(idx), L)
            else:
                with torch.no_grad():
                    ctx = self._context(self.enc_buffer.sample(idx_t, self.cfg.context_batch, self.collect_gen))
                    mu, var = self.posterior(ctx)
            z = self._sample_z(mu, var, self.collect_gen).unsqueeze(1)  # [k, 1, L]
            ep = self.run_episode(env, z, self.collect_gen, seed=self.seed * 7919 + self.env_steps)
            flat = {k: v[:, 0] for k, v in ep.items()}  # [k, H, ...]
            self.replay.add(idx, flat, flat["mask"])
            if to_enc:
                self.enc_buffer.add(idx, flat, flat["mask"])
            self.env_steps += int(flat["mask"].sum())
            rets.append(float(flat["rew"].sum(-1).mean()))
        return rets

    # -------------------------------------------------------------------------------------- updates
    def _update(self) -> dict[str, float]:
        cfg = self.cfg
        n = len(self.train_tasks)
        idx = torch.randint(n, (cfg.meta_batch,), generator=self.update_gen)
        ctx = self._context(self.enc_buffer.sample(idx, cfg.context_batch, self.update_gen))  # [M, Nc, d]
        b = self.replay.sample(idx, cfg.batch_size, self.update_gen)  # [M, B, ...]
        mu, var = self.posterior(ctx)
        z = self._sample_z(mu, var, self.update_gen) if cfg.information_bottleneck else mu
        zb = z.unsqueeze(1).expand(-1, cfg.batch_size, -1)
        x = torch.cat([b["obs"], zb], -1)
        x_next = torch.cat([b["next_obs"], zb], -1)
        kl = kl_to_standard_normal(mu, var).sum() if cfg.information_bottleneck else torch.zeros(())

        # critics and encoder
        q1 = self.q1(x, b["act"])
        q2 = self.q2(x, b["act"])
        with torch.no_grad():
            target_v = self.v_target(x_next)
            y = cfg.reward_scale * b["crew"] + (1.0 - b["term"]) * cfg.gamma * target_v
        q_loss = ((q1 - y) ** 2).mean() + ((q2 - y) ** 2).mean()
        loss = q_loss + cfg.kl_lambda * kl
        self._check("q_loss", loss.detach())
        self.q_opt.zero_grad(set_to_none=True)
        self.enc_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.q_opt.step()
        self.enc_opt.step()

        # value and policy on detached z
        xd = x.detach()
        pout = self.actor(xd)
        a, logp = self.actor.rsample(pout, self.update_gen)
        min_q = torch.minimum(self.q1(xd, a), self.q2(xd, a))
        v_pred = self.v(xd)
        v_loss = ((v_pred - (min_q - cfg.alpha * logp).detach()) ** 2).mean()
        mean, log_std = pout
        pol_loss = (cfg.alpha * logp - min_q).mean()
        pol_loss = pol_loss + cfg.policy_mean_reg * mean.pow(2).mean() + cfg.policy_std_reg * log_std.pow(2).mean()
        self._check("policy_loss", pol_loss.detach())
        # V and pi have disjoint parameters and neither loss depends on the other's: one backward pass
        # (the gradients it leaves on Q are discarded by the next critic step's zero_grad)
        self.v_opt.zero_grad(set_to_none=True)
        self.actor_opt.zero_grad(set_to_none=True)
        (v_loss + pol_loss).backward()
        self.v_opt.step()
        self.actor_opt.step()
        soft_update(self.v_target, self.v, cfg.tau)
        self.grad_steps += 1
        return {
            "q_loss": float(q_loss.detach()),
            "v_loss": float(v_loss.detach()),
            "policy_loss": float(pol_loss.detach()),
            "kl": float(kl.detach()) / cfg.meta_batch,
            "z_var": float(posterior_variance(mu, var).detach().mean()),
        }

    # ------------------------------------------------------------------------------------- training
    def train_step(self, iteration: int) -> dict[str, float]:
        """One PEARL iteration (algorithm 1): collect data for ``tasks_per_iter`` tasks, then
        ``grad_steps_per_iter`` gradient steps."""
        cfg = self.cfg
        n = len(self.train_tasks)
        if not self.initialized:
            self._collect(np.arange(n), cfg.initial_episodes, "prior", to_enc=True)
            self.initialized = True
        idx = np.sort(self.rng.choice(n, size=cfg.tasks_per_iter, replace=False))
        self.enc_buffer.clear(idx)
        r_prior = self._collect(idx, cfg.prior_episodes, "prior", to_enc=True)
        r_post = self._collect(idx, cfg.posterior_episodes, "posterior", to_enc=True)
        r_post += self._collect(idx, cfg.extra_episodes, "posterior", to_enc=False)
        sums: dict[str, float] = {}
        for _ in range(cfg.grad_steps_per_iter):
            for k, v in self._update().items():
                sums[k] = sums.get(k, 0.0) + v
        self.iterations_done += 1
        metrics = {"env_steps": float(self.env_steps), "grad_steps": float(self.grad_steps)}
        metrics.update({k: v / cfg.grad_steps_per_iter for k, v in sums.items()})
        metrics["return_prior"] = float(np.mean(r_prior)) if r_prior else 0.0
        metrics["return_posterior"] = float(np.mean(r_post)) if r_post else metrics["return_prior"]
        for k, v in metrics.items():
            if not math.isfinite(v):
                raise NumericError(k, iteration)
        return metrics

    def meta_train_step(self, iteration: int) -> dict[str, float]:
        return self.train_step(iteration)

    # ----------------------------------------------------------------------------------- meta-test
    @torch.no_grad()
    def posterior_sampling(
        self, tasks: Sequence[Any], episodes: int, chains: int, gen: torch.Generator,
        deterministic: bool = True, infer: bool = True,
    ) -> torch.Tensor:
        """Posterior sampling on ``tasks`` (Rakelly et al. 2019, sec. 4.3): returns ``[episodes, T, E]``.

        Episode ``k`` of chain ``(t, e)`` is played with ``z ~ q(z | c_{0..k-1})`` where ``c`` are all
        transitions of the chain's earlier episodes (``z ~ N(0, I)`` for k = 0); ``infer=False`` draws every
        episode's ``z`` from the prior instead (the "prior" baseline).
        """
        T, E, L = len(tasks), chains, self.cfg.latent_dim
        env = make_batched_env(self.task, T, E)
        env.set_tasks(list(tasks))
        mu, var = torch.zeros(T, E, L), torch.ones(T, E, L)
        ctxs, masks, rets = [], [], []
        for k in range(episodes):
            z = self._sample_z(mu, var, gen)
            ep = self.run_episode(env, z, gen, deterministic, seed=1000 * k)
            rets.append(ep["rew"].sum(-1))
            if infer:
                ctxs.append(self._context(ep))
                masks.append(ep["mask"])
                mu, var = self.posterior(torch.cat(ctxs, 2), torch.cat(masks, 2))
        return torch.stack(rets)

    def evaluate(self, cfg: PEARLEvalConfig | None = None, seed: int = 0) -> list[Row]:
        """Meta-test on ``cfg.test_tasks`` held-out tasks: rows ``pearl`` / ``prior`` / ``oracle`` per
        ``context_episodes`` k (see the module docstring). ``mean`` = mean over tasks of the per-task mean
        return (over ``chains_per_task`` runs), ``se`` over tasks, ``n`` = tasks."""
        cfg = cfg or PEARLEvalConfig()
        t0 = time.perf_counter()
        rng = np_rng(int(seed), "pearl-eval")
        tasks = list(self.task.sample(cfg.test_tasks, int(rng.integers(2**31 - 1)), "test"))
        K = max(cfg.context_episodes) + 1
        extra = {
            "chains_per_task": cfg.chains_per_task,
            "deterministic": cfg.deterministic,
            "train_env_steps": int(self.env_steps),
            "train_iterations": int(self.iterations_done),
        }

        def rows(method: str, rets: torch.Tensor, note: str) -> list[Row]:
            out = []
            for k in cfg.context_episodes:
                per_task = rets[k].double().mean(-1)  # [T]
                n = int(per_task.numel())
                se = float(per_task.std(unbiased=True) / math.sqrt(n)) if n > 1 else float("nan")
                out.append(Row(method, {"context_episodes": k}, float(per_task.mean()), se, n, {**extra, "note": note}))
            return out

        result = rows(
            "pearl",
            self.posterior_sampling(tasks, K, cfg.chains_per_task, torch_gen(int(seed), "pearl-eval-post"), cfg.deterministic),
            "posterior sampling: z ~ q(z | previous episodes)",
        )
        if "prior" in cfg.baselines:
            prior = self.posterior_sampling(
                tasks, K, cfg.chains_per_task, torch_gen(int(seed), "pearl-eval-prior"), cfg.deterministic, infer=False
            )
            result += rows("prior", prior, "z ~ N(0, I) every episode, no inference")
        if "oracle" in cfg.baselines and hasattr(self.task, "oracle_returns"):
            o = self.task.oracle_returns(tasks).double()
            o = o.view(1, -1, 1).expand(K, -1, 1)
            result += rows("oracle", o, "knows the goal; no adaptation")
        wall = round(time.perf_counter() - t0, 3)
        for r in result:
            r.extra["eval_wall_s"] = wall
        return result

    # MetaLearner protocol -------------------------------------------------------------------------
    @torch.no_grad()
    def adapt(self, task: Any, budget: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior ``(mu, var) [L]`` after ``budget`` posterior-sampling episodes on ``task``."""
        gen = torch_gen(int(seed), "pearl-adapt")
        env = make_batched_env(self.task, 1, 1)
        env.set_tasks([task])
        L = self.cfg.latent_dim
        mu, var = torch.zeros(1, 1, L), torch.ones(1, 1, L)
        ctxs, masks = [], []
        for _ in range(budget):
            ep = self.run_episode(env, self._sample_z(mu, var, gen), gen)
            ctxs.append(self._context(ep))
            masks.append(ep["mask"])
            mu, var = self.posterior(torch.cat(ctxs, 2), torch.cat(masks, 2))
        return mu[0, 0], posterior_variance(mu, var)[0, 0]

    @torch.no_grad()
    def act(self, adapted: tuple[torch.Tensor, torch.Tensor], obs: torch.Tensor) -> torch.Tensor:
        """Mean action of ``pi(a | s, z = posterior mean)``: ``obs [..., obs_dim] -> [..., act_dim]``."""
        mu = adapted[0]
        z = mu.expand(*obs.shape[:-1], mu.shape[-1])
        return self.actor.mode(self.actor(torch.cat([obs.float(), z], -1))) * self.act_scale + self.act_bias

    # ------------------------------------------------------------------------------------ checkpoints
    def _modules(self) -> dict[str, torch.nn.Module]:
        return {"encoder": self.encoder, "actor": self.actor, "q1": self.q1, "q2": self.q2, "v": self.v,
                "v_target": self.v_target}

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor": self.actor_opt, "q": self.q_opt, "v": self.v_opt, "encoder": self.enc_opt}

    def state_dict(self) -> dict[str, Any]:
        """Networks, optimizers, both replay buffers, RNG states and counters."""
        return {
            "modules": {k: {n: t.detach().clone() for n, t in m.state_dict().items()} for k, m in self._modules().items()},
            "optimizers": {k: optimizer_state(o) for k, o in self._optimizers().items()},
            "replay": self.replay.state_dict(),
            "enc_buffer": self.enc_buffer.state_dict(),
            "rng_tasks": get_state(self.rng),
            "rng_collect": get_state(self.collect_gen),
            "rng_update": get_state(self.update_gen),
            "env_steps": int(self.env_steps),
            "grad_steps": int(self.grad_steps),
            "iterations_done": int(self.iterations_done),
            "initialized": int(self.initialized),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output; CheckpointError naming the missing/bad key otherwise."""
        try:
            for k, m in self._modules().items():
                m.load_state_dict(state["modules"][k])
            for k, o in self._optimizers().items():
                load_optimizer_state(o, state["optimizers"][k])
            self.replay.load_state_dict(state["replay"])
            self.enc_buffer.load_state_dict(state["enc_buffer"])
            set_state(self.rng, state["rng_tasks"])
            set_state(self.collect_gen, state["rng_collect"])
            set_state(self.update_gen, state["rng_update"])
            self.env_steps = int(state["env_steps"])
            self.grad_steps = int(state["grad_steps"])
            self.iterations_done = int(state["iterations_done"])
            self.initialized = bool(int(state["initialized"]))
        except KeyError as e:
            raise CheckpointError(f"PEARL checkpoint: missing key {e.args[0]!r}") from None
        except (RuntimeError, ValueError, TypeError, IndexError) as e:
            raise CheckpointError(f"PEARL checkpoint: incompatible state ({str(e).splitlines()[0]})") from None


@register_algo("pearl", family="metarl", config=PEARLConfig, eval_config=PEARLEvalConfig)
def build_pearl(cfg: PEARLConfig, task: object, seed: int) -> PEARL:
    """PEARL (Rakelly et al. 2019): SAC on [s, z] with a product-of-Gaussians context encoder."""
    return PEARL(cfg, task, seed)


__all__ = ["LoopBatchedEnv", "PEARL", "PEARLConfig", "PEARLEvalConfig", "TaskBuffers", "build_pearl", "make_batched_env"]
