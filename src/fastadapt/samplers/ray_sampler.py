"""Ray sampler: the process sampler's chunked collection on Ray actors (for more than one machine).

Each actor owns a :class:`~fastadapt.samplers.process.ChunkCollector` (its own envs and a copy of the
policy module) and collects the chunks it is handed; seeds are derived per ``(task, env)`` pair and per
chunk exactly as in :class:`~fastadapt.samplers.process.ProcessSampler`, so the same ``(tasks, params, seed,
chunk_size)`` gives the same :class:`~fastadapt.core.types.EpisodeBatch` under both engines, whatever the
number of actors. An actor that dies (``RayActorError``) is replaced and its share re-collected, logged on
the ``fastadapt.samplers.ray`` logger. ``ray`` is imported lazily (optional dependency ``ray``).

Usage::

    sampler = RaySampler(dist.make_env, policy, num_envs=20, num_workers=2,
                         ray_init={"num_cpus": 2, "_temp_dir": "/tmp/ray-run"})
    batch = sampler.sample(tasks, params, seed=0)
    sampler.close()                    # kills the actors (and shuts Ray down if this sampler started it)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from fastadapt.core.errors import EnvError
from fastadapt.core.types import EpisodeBatch
from fastadapt.samplers.process import (
    ChunkCollector,
    assemble,
    assign_chunks,
    make_chunks,
    params_from_numpy,
    params_to_numpy,
    shared_params,
    split_result,
    task_to_json,
)
from fastadapt.samplers.vector import EnvOutputError
from fastadapt.samplers.vector import check_params

log = logging.getLogger("fastadapt.samplers.ray")


class _CollectorActor:
    """Body of the Ray actor (wrapped with ``ray.remote`` lazily)."""

    def __init__(self, env_fn: Callable[[], Any], policy: nn.Module, horizon: int | None,
                 deterministic: bool, info_keys: Sequence[str]) -> None:
        torch.set_num_threads(1)
        self.collector = ChunkCollector(env_fn, policy, horizon, deterministic, info_keys)

    def pid(self) -> int:
        import os

        return os.getpid()

    def collect(self, tasks: list[Any], arrays: dict[str, np.ndarray], chunks: list[tuple[int, int, int]],
                num_envs: int, seed: int) -> dict[str, np.ndarray]:
        return self.collector.collect(
            tasks, params_from_numpy(arrays, "p/"), params_from_numpy(arrays, "s/"), chunks, num_envs, seed
        )


class RaySampler:
    """Same arguments and batches as :class:`~fastadapt.samplers.process.ProcessSampler`, on Ray actors.

    Extra args: ``ray_init`` (kwargs for ``ray.init`` if Ray is not running yet, e.g. ``{"num_cpus": 2}``)
    and ``actor_options`` (kwargs for ``.options(...)`` of each actor, default ``{"num_cpus": 1}``).
    """

    def __init__(
        self,
        envs: Any,
        policy: nn.Module,
        num_envs: int,
        horizon: int | None = None,
        num_workers: int = 2,
        chunk_size: int | None = None,
        deterministic: bool = False,
        info_keys: Sequence[str] = (),
        max_restarts: int = 3,
        ray_init: dict[str, Any] | None = None,
        actor_options: dict[str, Any] | None = None,
    ) -> None:
        if num_envs < 1 or num_workers < 1:
            raise ValueError(f"num_envs and num_workers must be >= 1, got {num_envs}, {num_workers}")
        self.env_fn: Callable[[], Any] = envs.make_env if hasattr(envs, "make_env") else envs
        self.policy = policy
        self.num_envs = int(num_envs)
        self.num_workers = int(num_workers)
        self.chunk_size = chunk_size
        if horizon is None and isinstance(getattr(envs, "max_episode_steps", None), int):
            horizon = int(envs.max_episode_steps)
        self.horizon = horizon
        self.deterministic = deterministic
        self.info_keys = tuple(info_keys)
        self.max_restarts = int(max_restarts)
        self.ray_init = dict(ray_init or {})
        self.actor_options = dict(actor_options or {"num_cpus": 1})
        self.restarts: list[dict[str, Any]] = []
        self._actors: list[Any] = []
        self._started_ray = False
        self._remote_cls: Any = None

    def _ray(self) -> Any:
        try:
            import ray
        except ImportError as exc:  # pragma: no cover - depends on the optional extra
            raise EnvError("the ray sampler needs the optional dependency 'ray' (pip install ray)") from exc
        if not ray.is_initialized():
            ray.init(**{"include_dashboard": False, "log_to_driver": False, **self.ray_init})
            self._started_ray = True
        if self._remote_cls is None:
            self._remote_cls = ray.remote(_CollectorActor)
        return ray

    def _new_actor(self) -> Any:
        return self._remote_cls.options(**self.actor_options).remote(
            self.env_fn, self.policy, self.horizon, self.deterministic, self.info_keys
        )

    def _start(self) -> Any:
        ray = self._ray()
        if not self._actors:
            self._actors = [self._new_actor() for _ in range(self.num_workers)]
        return ray

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the actors."""
        ray = self._start()
        return [int(p) for p in ray.get([a.pid.remote() for a in self._actors])]

    def sample(
        self, tasks: Sequence[Any], params: dict[str, torch.Tensor] | None = None, seed: int = 0
    ) -> EpisodeBatch:
        """One episode per env for every task (same layout and values as the process engine)."""
        num_tasks = len(tasks)
        if num_tasks < 1:
            raise ValueError("tasks: expected at least one task")
        check_params(params, num_tasks)
        ray = self._start()
        tasks_json = [task_to_json(t) for t in tasks]
        chunks = make_chunks(num_tasks, self.num_envs, self.chunk_size)
        arrays = {**params_to_numpy(params, "p/"), **params_to_numpy(shared_params(self.policy), "s/")}
        arrays_ref = ray.put(arrays)
        shares = assign_chunks(chunks, len(self._actors))
        refs = {
            i: self._actors[i].collect.remote(tasks_json, arrays_ref, share, self.num_envs, int(seed))
            for i, share in enumerate(shares) if share
        }
        results: dict[int, dict[str, np.ndarray]] = {}
        restarts = 0
        while refs:
            i, ref = next(iter(refs.items()))
            try:
                data = ray.get(ref)
            except ray.exceptions.RayActorError as exc:
                restarts += 1
                share = shares[i]
                tasks_hit = sorted({p // self.num_envs for _, s, e in share for p in range(s, e)})
                if restarts > self.max_restarts:
                    raise EnvError(
                        f"ray sampler actor {i} died and the restart budget ({self.max_restarts}) is spent; "
                        f"tasks {tasks_hit} were not collected"
                    ) from exc
                log.warning("ray sampler: actor %d died while collecting tasks %s; replaced it and "
                            "re-collecting its whole share", i, tasks_hit)
                self.restarts.append({"worker": i, "tasks": tasks_hit})
                self._actors[i] = self._new_actor()
                refs[i] = self._actors[i].collect.remote(tasks_json, arrays_ref, share, self.num_envs, int(seed))
                continue
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause if getattr(exc, "cause", None) is not None else exc
                if isinstance(cause, EnvOutputError):  # keep it a NumericError for the trainer
                    raise EnvOutputError(cause.kind, cause.task_index, cause.env_index, cause.step,
                                         cause.task) from exc
                if isinstance(cause, EnvError):
                    raise EnvError(str(cause)) from exc
                raise EnvError(f"ray sampler actor {i}: {type(cause).__name__}: {cause}") from exc
            results.update(split_result(data, shares[i]))
            del refs[i]
        return assemble(results, chunks, num_tasks, self.num_envs)

    def close(self) -> None:
        """Kill the actors; shut Ray down if this sampler started it."""
        if not self._actors and not self._started_ray:
            return
        import ray

        for a in self._actors:
            try:
                ray.kill(a)
            except Exception:  # noqa: BLE001 - best effort
                pass
        self._actors = []
        if self._started_ray and ray.is_initialized():
            ray.shutdown()
        self._started_ray = False

    def __enter__(self) -> RaySampler:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = ["RaySampler"]
