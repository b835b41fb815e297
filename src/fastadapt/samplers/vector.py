"""In-process batched sampler: every task x env stepped at once, per-task policies through ``torch.func``.

At each time step the sampler makes ONE batched env step (``core.protocols.BatchedEnv.step`` on
``[tasks, envs, ...]``) and ONE batched policy forward for all tasks. With per-task (e.g. MAML-adapted)
parameters ``params = {name: [tasks, *shape]}`` the forward is
``vmap(lambda p, o: functional_call(policy, p, (o,)))(params, obs [tasks, envs, obs_dim])`` — no Python
loop over tasks (Finn et al. 2017 collect the post-update rollouts of every task this way, one policy per
task).

Usage (stable API)::

    from fastadapt.samplers import VectorSampler
    dist = Navigation2D()                                      # anything with .batched_env(T, E)
    policy = GaussianMLPPolicy(2, 2)                           # fastadapt.nn.policies API
    sampler = VectorSampler(dist, policy, num_envs=20)         # horizon: the env's max_episode_steps
    batch = sampler.sample(tasks, params=None, seed=0)         # params=None: the policy's own weights
    batch = sampler.sample(tasks, params=adapted, seed=1)      # adapted: {name: [tasks, *shape]}

The :class:`~fastadapt.core.types.EpisodeBatch` holds ``obs [T, E, H, obs_dim]``, ``actions [T, E, H,
act_dim]`` (``[T, E, H]`` int64 for discrete actions), ``rewards/dones/mask/log_probs [T, E, H]``. One
episode per env, starting from ``reset``; ``mask`` is 1 for steps taken before the episode ended and
``rewards``/``log_probs`` are 0 where ``mask`` is 0; ``dones`` is 1 on the last step of each episode.
``infos`` holds ``terminated [T, E, H]`` (1 where the episode ended by termination, not by the time limit,
so value targets do not bootstrap there) and ``last_obs [T, E, obs_dim]`` (the observation after the last
valid step, for bootstrapping truncated episodes). Same ``(tasks, params, seed)`` => identical batch.

Faults: a NaN/Inf observation or reward raises :class:`EnvOutputError` (a ``NumericError`` and an
``EnvError``) naming the quantity, the task and env index and the episode step; a wrong-shaped step output
raises ``EnvError``. Either way no batch is returned, so nothing partial reaches an update.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from fastadapt.core.errors import EnvError, NumericError
from fastadapt.core.protocols import BatchedEnv
from fastadapt.core.seeding import derive_seed, torch_gen
from fastadapt.core.types import EpisodeBatch


class EnvOutputError(NumericError, EnvError):
    """A non-finite observation or reward caught by a sampler before it reaches a batch.

    It is a :class:`NumericError` (``fastadapt train`` stops, writes a ``fault`` record to metrics.jsonl naming
    the iteration, keeps the last good checkpoint) and an :class:`EnvError` (it names the task and env).
    ``kind`` is ``"observation"`` or ``"reward"``; ``task_index`` / ``env_index`` locate the env in the
    sampled ``[tasks, envs]`` grid; ``step`` is the time step within the episode (-1: the reset
    observation). The quantity reads ``"observation of task 1 env 2"`` so that the trainer's one-line
    message (which keeps only the quantity and adds the iteration) names all of it.
    """

    def __init__(self, kind: str, task_index: int, env_index: int, step: int, task: str = "") -> None:
        self.kind, self.task_index, self.env_index, self.step, self.task = kind, task_index, env_index, step, task
        detail = ("at reset" if step < 0 else f"episode step {step}") + (f", task {task}" if task else "")
        super().__init__(f"{kind} of task {task_index} env {env_index}", None, detail)

    def __reduce__(self) -> Any:  # rebuild from the fields (Ray ships exceptions between processes)
        return (type(self), (self.kind, self.task_index, self.env_index, self.step, self.task))


def describe_task(task: Any, limit: int = 60) -> str:
    """A short repr of a task for error messages."""
    text = repr(task)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_step_output(
    env: Any,
    tasks: Sequence[Any],
    step: int,
    obs: torch.Tensor,
    rew: torch.Tensor,
    term: torch.Tensor,
    trunc: torch.Tensor,
    obs_shape: torch.Size,
) -> None:
    """Raise if a batched env's step returned wrong shapes (EnvError) or a NaN/Inf (EnvOutputError).

    The finiteness test is one fused sum per step; the exact (slower) test runs only when that sum is
    not finite, so the common case costs one reduction and one sync.
    """
    T, E = obs_shape[0], obs_shape[1]
    if obs.shape != obs_shape or rew.shape != (T, E) or term.shape != (T, E) or trunc.shape != (T, E):
        raise EnvError(
            f"batched env {type(env).__name__}: step {step} returned obs {list(obs.shape)}, reward "
            f"{list(rew.shape)}, terminated {list(term.shape)}, truncated {list(trunc.shape)}; expected obs "
            f"{list(obs_shape)} and [{T}, {E}] for the others"
        )
    if math.isfinite((rew.sum() + obs.sum()).item()):
        return
    bad_rew = ~torch.isfinite(rew)
    bad_obs = ~torch.isfinite(obs.reshape(T, E, -1)).all(-1)
    for kind, bad in (("reward", bad_rew), ("observation", bad_obs)):
        if bool(bad.any()):
            ti, ei = (int(v) for v in bad.nonzero()[0])
            raise EnvOutputError(kind, ti, ei, step, describe_task(tasks[ti]))
    # only a huge-but-finite sum overflowed: nothing to report


def per_task_forward(policy: nn.Module) -> Callable[[dict[str, torch.Tensor], torch.Tensor], Any]:
    """``f(params {name: [T, *shape]}, obs [T, ...]) -> policy outputs with a leading T`` via vmap.

    Parameters missing from ``params`` (e.g. an un-adapted ``log_std``) come from ``policy`` itself and are
    shared by all tasks.
    """

    def one(p: dict[str, torch.Tensor], o: torch.Tensor) -> Any:
        return torch.func.functional_call(policy, p, (o,), strict=False)

    return torch.func.vmap(one, in_dims=(0, 0))


def check_params(params: dict[str, torch.Tensor] | None, num_tasks: int) -> None:
    """Every per-task tensor must have a leading ``tasks`` dim of size ``num_tasks`` (ValueError otherwise)."""
    if params is None:
        return
    for name, value in params.items():
        if value.dim() == 0 or value.shape[0] != num_tasks:
            raise ValueError(
                f"params[{name!r}]: expected a leading tasks dim of {num_tasks}, got shape {tuple(value.shape)}"
            )


class VectorSampler:
    """Batched in-process sampler over a :class:`~fastadapt.core.protocols.BatchedEnv` (see module doc).

    Args:
        envs: a task family with ``batched_env(num_tasks, num_envs)`` (e.g. ``Navigation2D``) or a callable
            ``(num_tasks, num_envs) -> BatchedEnv``. One env is built (and cached) per number of tasks.
        policy: a ``fastadapt.nn.policies`` module: ``forward(obs) -> out``, ``sample(out, generator)``,
            ``log_prob(out, a)``, ``mode(out)``.
        num_envs: episodes (parallel envs) per task.
        horizon: steps per episode (default: the env's ``max_episode_steps``).
        deterministic: act with ``policy.mode`` instead of sampling.
        stop_early: stop stepping once every episode has ended (the rest is padding with ``mask = 0``).
    """

    def __init__(
        self,
        envs: Any,
        policy: nn.Module,
        num_envs: int,
        horizon: int | None = None,
        deterministic: bool = False,
        stop_early: bool = True,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if hasattr(envs, "batched_env"):
            self._make_env: Callable[[int, int], BatchedEnv] = envs.batched_env
        elif callable(envs):
            self._make_env = envs
        else:
            raise TypeError("envs: expected a task family with .batched_env(T, E) or a callable (T, E) -> env")
        self.policy = policy
        self.num_envs = int(num_envs)
        self.horizon = horizon
        self.deterministic = bool(deterministic)
        self.stop_early = bool(stop_early)
        self._envs: dict[int, BatchedEnv] = {}
        self._vforward = per_task_forward(policy)

    def env(self, num_tasks: int) -> BatchedEnv:
        """The (cached) batched env for ``num_tasks`` tasks."""
        if num_tasks not in self._envs:
            self._envs[num_tasks] = self._make_env(num_tasks, self.num_envs)
        return self._envs[num_tasks]

    def forward(self, params: dict[str, torch.Tensor] | None, obs: torch.Tensor) -> Any:
        """Policy outputs for ``obs [T, E, obs_dim]``, per-task ``params`` via vmap (or the shared weights)."""
        if params is None:
            return self.policy(obs)
        return self._vforward(params, obs)

    @torch.no_grad()
    def sample(
        self, tasks: Sequence[Any], params: dict[str, torch.Tensor] | None = None, seed: int = 0
    ) -> EpisodeBatch:
        """One episode per env for every task: an EpisodeBatch with ``[tasks, envs, time, ...]`` tensors."""
        num_tasks = len(tasks)
        if num_tasks < 1:
            raise ValueError("tasks: expected at least one task")
        check_params(params, num_tasks)
        env = self.env(num_tasks)
        horizon = int(self.horizon or env.max_episode_steps)
        env.set_tasks(tasks)
        gen = torch_gen(seed, "vector-sampler", "actions")
        obs = env.reset(seed=derive_seed(seed, "vector-sampler", "env"))
        T, E = num_tasks, self.num_envs
        if obs.shape[:2] != (T, E):
            raise EnvError(f"batched env: reset returned obs {tuple(obs.shape)}, expected [{T}, {E}, ...]")
        obs_shape = obs.shape
        if not bool(torch.isfinite(obs).all()):
            bad = ~torch.isfinite(obs.reshape(T, E, -1)).all(-1)
            ti, ei = (int(v) for v in bad.nonzero()[0])
            raise EnvOutputError("observation", ti, ei, -1, describe_task(tasks[ti]))
        obs_buf = torch.zeros((horizon, *obs.shape), dtype=torch.float32)
        rew_buf = torch.zeros(horizon, T, E)
        done_buf = torch.zeros(horizon, T, E)
        term_buf = torch.zeros(horizon, T, E)
        mask_buf = torch.zeros(horizon, T, E)
        logp_buf = torch.zeros(horizon, T, E)
        act_buf: torch.Tensor | None = None
        alive = torch.ones(T, E, dtype=torch.bool)
        last_obs = obs.clone()
        for t in range(horizon):
            obs_buf[t] = obs
            out = self.forward(params, obs)
            actions = self.policy.mode(out) if self.deterministic else self.policy.sample(out, gen)
            logp = self.policy.log_prob(out, actions)
            if act_buf is None:
                act_buf = torch.zeros((horizon, *actions.shape), dtype=actions.dtype)
            act_buf[t] = actions
            obs, rew, term, trunc, _ = env.step(actions)
            check_step_output(env, tasks, t, obs, rew, term, trunc, obs_shape)
            alive_f = alive.float()
            mask_buf[t] = alive_f
            rew_buf[t] = rew * alive_f
            logp_buf[t] = logp * alive_f
            ended = (term | trunc) & alive
            done_buf[t] = ended.float()
            term_buf[t] = (term & alive).float()
            if t == horizon - 1:
                ended = alive.clone()
                done_buf[t] = ended.float()
            last_obs = torch.where(alive.reshape(T, E, *([1] * (obs.dim() - 2))), obs, last_obs)
            alive = alive & ~ended
            if self.stop_early and not bool(alive.any()):
                break
        if not torch.isfinite(logp_buf).all():
            raise NumericError("log_probs", detail="policy log-probability of a sampled action")
        assert act_buf is not None

        def tefirst(x: torch.Tensor) -> torch.Tensor:
            return x.movedim(0, 2).contiguous()

        return EpisodeBatch(
            obs=tefirst(obs_buf),
            actions=tefirst(act_buf),
            rewards=tefirst(rew_buf),
            dones=tefirst(done_buf),
            mask=tefirst(mask_buf),
            log_probs=tefirst(logp_buf),
            infos={"terminated": tefirst(term_buf), "last_obs": last_obs},
        )


__all__ = [
    "EnvOutputError",
    "VectorSampler",
    "check_params",
    "check_step_output",
    "describe_task",
    "per_task_forward",
]
