"""Multi-process sampler for simulators that cannot batch (MuJoCo, Meta-World).

Work is cut into fixed *chunks* of ``(task, env)`` pairs (pair ``p = task * num_envs + env``; chunk ``c``
holds pairs ``[c * chunk_size, (c + 1) * chunk_size)``; ``chunk_size`` defaults to ``num_envs``, i.e. one
task per chunk). A chunk's envs are stepped in lock-step inside one worker, with one policy forward per time
step for the whole chunk (per-pair parameters through ``torch.func.vmap`` when a chunk spans tasks). Every
pair's env is reset with a seed derived from ``(seed, task, env)`` and every chunk samples its actions from
a generator derived from ``(seed, chunk)``, so the batch depends on ``(tasks, params, seed, chunk_size)``
only — not on the number of workers, nor on worker restarts — and :class:`~fastadapt.samplers.ray_sampler.
RaySampler` returns the same batch.

Workers are forked once and keep their envs between calls. Parameters, tasks and results cross the pipe as
a JSON header plus raw numpy buffers (no pickle). A worker that dies (killed, segfault, OOM) is restarted and
its whole share re-collected from scratch; the event is logged on the ``fastadapt.samplers.process`` logger
at WARNING level and counted in :attr:`ProcessSampler.restarts`. Results are assembled only once every
chunk has arrived, so a partial batch is never returned. An exception inside an env becomes
:class:`~fastadapt.core.errors.EnvError` naming the task and env index, and so does an observation of the
wrong shape or a non-scalar reward; a NaN/Inf observation or reward raises
:class:`~fastadapt.samplers.vector.EnvOutputError` (a ``NumericError`` too, so ``fastadapt train`` records
a fault) naming the quantity, task, env and episode step. On any of these the sampler stops its workers and
returns nothing.

Usage::

    sampler = ProcessSampler(dist.make_env, policy, num_envs=20, num_workers=2)
    batch = sampler.sample(tasks, params=None, seed=0)     # same EpisodeBatch layout as VectorSampler
    sampler.close()                                        # or use it as a context manager

``num_workers=0`` collects in the calling process (same batch; handy for debugging and tests).
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import logging
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

import numpy as np
import torch
from torch import nn

from fastadapt.core.errors import EnvError
from fastadapt.core.seeding import derive_seed, torch_gen
from fastadapt.core.types import EpisodeBatch
from fastadapt.samplers.vector import EnvOutputError, check_params, describe_task

log = logging.getLogger("fastadapt.samplers.process")

Chunk = tuple[int, int, int]  # (chunk index, first pair, end pair)


# ------------------------------------------------------------------------------------------------------
# tasks and arrays on the wire (JSON + raw buffers, no pickle)
# ------------------------------------------------------------------------------------------------------
def task_to_json(task: Any) -> Any:
    """A JSON-able form of a task (``to_dict()``, dataclass fields, dicts/lists of numbers and arrays)."""
    if hasattr(task, "to_dict"):
        return task_to_json(task.to_dict())
    if dataclasses.is_dataclass(task) and not isinstance(task, type):
        return task_to_json(dataclasses.asdict(task))
    if isinstance(task, dict):
        return {str(k): task_to_json(v) for k, v in task.items()}
    if isinstance(task, (list, tuple)):
        return [task_to_json(v) for v in task]
    if isinstance(task, np.ndarray):
        return task.tolist()
    if isinstance(task, torch.Tensor):
        return task.tolist()
    if isinstance(task, (np.integer, np.floating, np.bool_)):
        return task.item()
    if task is None or isinstance(task, (bool, int, float, str)):
        return task
    raise EnvError(f"task {task!r}: not JSON-able (use numbers, lists, dicts or dataclasses)")


def send_message(conn: Connection, header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> None:
    """Send ``header`` (JSON) followed by the raw bytes of each array."""
    arrays = arrays or {}
    meta = [
        {"name": k, "dtype": str(v.dtype), "shape": list(v.shape)} for k, v in arrays.items()
    ]
    conn.send_bytes(json.dumps({**header, "_arrays": meta}).encode("utf-8"))
    for v in arrays.values():
        conn.send_bytes(np.ascontiguousarray(v).tobytes())


def recv_message(conn: Connection) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Receive what :func:`send_message` sent."""
    header = json.loads(conn.recv_bytes().decode("utf-8"))
    arrays: dict[str, np.ndarray] = {}
    for m in header.pop("_arrays"):
        buf = conn.recv_bytes()
        arrays[m["name"]] = np.frombuffer(buf, dtype=np.dtype(m["dtype"])).reshape(m["shape"]).copy()
    return header, arrays


def params_to_numpy(params: dict[str, torch.Tensor] | None, prefix: str) -> dict[str, np.ndarray]:
    if params is None:
        return {}
    return {prefix + k: v.detach().cpu().contiguous().numpy() for k, v in params.items()}


def params_from_numpy(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, torch.Tensor] | None:
    out = {k[len(prefix):]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith(prefix)}
    return out or None


# ------------------------------------------------------------------------------------------------------
# chunk collection (shared by the process and Ray engines)
# ------------------------------------------------------------------------------------------------------
def make_chunks(num_tasks: int, num_envs: int, chunk_size: int | None) -> list[Chunk]:
    """Fixed chunks of the ``num_tasks * num_envs`` pairs."""
    total = num_tasks * num_envs
    size = int(chunk_size or num_envs)
    return [(c, s, min(s + size, total)) for c, s in enumerate(range(0, total, size))]


def env_horizon(env: Any) -> int:
    """The episode length of a gymnasium env: ``spec.max_episode_steps`` or the env's ``horizon``."""
    spec = getattr(env, "spec", None)
    if spec is not None and spec.max_episode_steps:
        return int(spec.max_episode_steps)
    for attr in ("horizon", "max_episode_steps", "episode_steps", "_max_episode_steps", "max_path_length"):
        value = getattr(env.unwrapped, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    raise EnvError(f"env {env}: unknown episode length; pass horizon= to the sampler")


def expected_obs_shape(env: Any, first_obs: Any) -> tuple[int, ...]:
    """The observation shape every env of a chunk must return: the observation space's, else the first's."""
    shape = getattr(getattr(env, "observation_space", None), "shape", None)
    if isinstance(shape, tuple):
        return shape
    return tuple(np.shape(first_obs))


def as_observation(o: Any, shape: tuple[int, ...], t: int, e: int, where: str) -> np.ndarray:
    """``o`` as a float32 array of ``shape``; EnvError naming the task and env otherwise."""
    try:
        arr = np.asarray(o, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise EnvError(f"task {t} env {e}: {where} returned a non-numeric observation ({exc})") from None
    if arr.shape != shape:
        raise EnvError(f"task {t} env {e}: {where} returned an observation of shape {arr.shape}, expected {shape}")
    return arr


def as_reward(r: Any, t: int, e: int, step: int) -> float:
    """``r`` as a float (a real scalar); EnvError naming the task and env otherwise."""
    if np.ndim(r) != 0:
        raise EnvError(f"task {t} env {e}: step {step} returned a reward of shape {np.shape(r)}, expected a scalar")
    try:
        return float(r)
    except (TypeError, ValueError) as exc:
        raise EnvError(f"task {t} env {e}: step {step} returned a non-numeric reward {r!r} ({exc})") from None


class ChunkCollector:
    """Steps chunks of single gymnasium envs in lock-step with one policy forward per step.

    ``collect(tasks_json, params, shared, chunks, num_envs, seed)`` returns numpy arrays for the chunks'
    pairs in order: ``obs [n, H, *obs_shape]``, ``actions [n, H, *act_shape]``, ``rewards``, ``dones``,
    ``terminated``, ``mask``, ``log_probs`` ``[n, H]``, ``last_obs [n, *obs_shape]`` and one ``info_<key>
    [n, H]`` per requested info key (e.g. Meta-World's ``success``).
    """

    def __init__(
        self,
        env_fn: Callable[[], Any],
        policy: nn.Module,
        horizon: int | None = None,
        deterministic: bool = False,
        info_keys: Sequence[str] = (),
    ) -> None:
        self.env_fn = env_fn
        self.policy = policy
        self.horizon = horizon
        self.deterministic = deterministic
        self.info_keys = tuple(info_keys)
        self.envs: list[Any] = []

        def one(p: dict[str, torch.Tensor], o: torch.Tensor) -> Any:
            return torch.func.functional_call(policy, p, (o,), strict=False)

        self._vone = torch.func.vmap(one, in_dims=(0, 0))
        self._scratch: nn.Module | None = None

    def _ensure_envs(self, n: int) -> None:
        while len(self.envs) < n:
            self.envs.append(self.env_fn())

    def _load_shared(self, shared: dict[str, torch.Tensor] | None) -> None:
        """Copy the sender's current weights into this collector's policy (a forked copy may be stale)."""
        if not shared:
            return
        for name, t in itertools.chain(self.policy.named_parameters(), self.policy.named_buffers()):
            src = shared.get(name)
            if src is not None and src.data_ptr() != t.data_ptr():
                t.data.copy_(src)

    def _load_task(self, params: dict[str, torch.Tensor], t: int) -> nn.Module:
        """A scratch copy of the policy holding task ``t``'s parameters (plain calls are cheaper than
        ``functional_call``; the numbers are the same)."""
        if self._scratch is None:
            self._scratch = copy.deepcopy(self.policy)
        own = dict(itertools.chain(self.policy.named_parameters(), self.policy.named_buffers()))
        for name, p in itertools.chain(self._scratch.named_parameters(), self._scratch.named_buffers()):
            p.data.copy_(params[name][t] if name in params else own[name])
        return self._scratch

    def _forward(
        self,
        params: dict[str, torch.Tensor] | None,
        module: nn.Module | None,
        task_idx: np.ndarray,
        obs: torch.Tensor,
    ) -> Any:
        if module is not None:
            return module(obs)
        assert params is not None
        idx = torch.as_tensor(task_idx)
        per_pair = {k: v[idx] for k, v in params.items()}
        out = self._vone(per_pair, obs.unsqueeze(1))
        return tuple(o.squeeze(1) for o in out) if isinstance(out, tuple) else out.squeeze(1)

    @torch.inference_mode()  # results leave as numpy arrays, so inference tensors never escape
    def collect(
        self,
        tasks: Sequence[Any],
        params: dict[str, torch.Tensor] | None,
        shared: dict[str, torch.Tensor] | None,
        chunks: Sequence[Chunk],
        num_envs: int,
        seed: int,
    ) -> dict[str, np.ndarray]:
        self._load_shared(shared)
        parts = [self._collect_chunk(tasks, params, ch, num_envs, seed) for ch in chunks]
        return {k: np.concatenate([p[k] for p in parts], axis=0) for k in parts[0]}

    def _collect_chunk(
        self,
        tasks: Sequence[Any],
        params: dict[str, torch.Tensor] | None,
        chunk: Chunk,
        num_envs: int,
        seed: int,
    ) -> dict[str, np.ndarray]:
        c, start, end = chunk
        n = end - start
        self._ensure_envs(n)
        envs = self.envs[:n]
        pairs = [(p // num_envs, p % num_envs) for p in range(start, end)]
        task_idx = np.array([t for t, _ in pairs])
        horizon = int(self.horizon or env_horizon(envs[0]))
        first = []
        obs_shape: tuple[int, ...] | None = None
        for env, (t, e) in zip(envs, pairs):
            try:
                o, _ = env.reset(
                    seed=derive_seed(seed, "process-sampler", "env", t, e), options={"task": tasks[t]}
                )
            except Exception as exc:  # noqa: BLE001 - re-raised with the culprit named
                raise EnvError(f"task {t} env {e}: reset failed: {type(exc).__name__}: {exc}") from exc
            if obs_shape is None:
                obs_shape = expected_obs_shape(env, o)
            o = as_observation(o, obs_shape, t, e, "reset")
            if not np.isfinite(o).all():
                raise EnvOutputError("observation", t, e, -1, describe_task(tasks[t]))
            first.append(o)
        obs = np.stack(first)
        assert obs_shape is not None
        gen = torch_gen(seed, "process-sampler", "chunk", c)
        obs_buf = np.zeros((n, horizon, *obs_shape), dtype=np.float32)
        rew = np.zeros((n, horizon), dtype=np.float32)
        done = np.zeros((n, horizon), dtype=np.float32)
        term_buf = np.zeros((n, horizon), dtype=np.float32)
        mask = np.zeros((n, horizon), dtype=np.float32)
        logp_buf = np.zeros((n, horizon), dtype=np.float32)
        infos = {k: np.zeros((n, horizon), dtype=np.float32) for k in self.info_keys}
        act_buf: np.ndarray | None = None
        alive = np.ones(n, dtype=bool)
        module: nn.Module | None = self.policy
        if params is not None:
            uniq = np.unique(task_idx)
            module = self._load_task(params, int(uniq[0])) if len(uniq) == 1 else None
        discrete = False
        for step in range(horizon):
            obs_buf[:, step] = obs
            out = self._forward(params, module, task_idx, torch.from_numpy(obs))
            a = self.policy.mode(out) if self.deterministic else self.policy.sample(out, gen)
            lp = self.policy.log_prob(out, a).numpy()
            a_np = a.numpy()
            if act_buf is None:
                act_buf = np.zeros((n, horizon, *a_np.shape[1:]), dtype=a_np.dtype)
                discrete = a_np.ndim == 1 and a_np.dtype.kind in "iu"
            act_buf[:, step] = a_np
            logp_buf[:, step] = np.where(alive, lp, 0.0)
            live = np.flatnonzero(alive)
            mask[live, step] = 1.0
            for i in live:
                action = int(a_np[i]) if discrete else a_np[i]
                try:
                    o, r, te, tr, info = envs[i].step(action)
                except Exception as exc:  # noqa: BLE001 - re-raised with the culprit named
                    t, e = pairs[i]
                    raise EnvError(
                        f"task {t} env {e}: step {step} failed: {type(exc).__name__}: {exc}"
                    ) from exc
                obs[i] = as_observation(o, obs_shape, *pairs[i], f"step {step}")
                rew[i, step] = as_reward(r, *pairs[i], step)
                for k in self.info_keys:
                    infos[k][i, step] = float(info.get(k, 0.0))
                if te or tr:
                    done[i, step] = 1.0
                    term_buf[i, step] = float(bool(te))
                    alive[i] = False
            if not (np.isfinite(obs[live]).all() and np.isfinite(rew[live, step]).all()):
                ok_obs = np.isfinite(obs[live]).reshape(len(live), -1).all(1)
                ok_rew = np.isfinite(rew[live, step])
                kind = "reward" if not ok_rew.all() else "observation"
                bad = live[~ok_rew] if kind == "reward" else live[~ok_obs]
                t, e = pairs[int(bad[0])]
                raise EnvOutputError(kind, t, e, step, describe_task(tasks[t]))
            if step == horizon - 1:
                done[alive, step] = 1.0
                alive[:] = False
            if not alive.any():
                break
        assert act_buf is not None
        result = {
            "obs": obs_buf,
            "actions": act_buf,
            "rewards": rew,
            "dones": done,
            "terminated": term_buf,
            "mask": mask,
            "log_probs": logp_buf,
            "last_obs": obs,  # dead envs' rows were not updated after their last step
        }
        result.update({f"info_{k}": v for k, v in infos.items()})
        return result

    def close(self) -> None:
        for env in self.envs:
            try:
                env.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
        self.envs = []


def assemble(
    results: dict[int, dict[str, np.ndarray]], chunks: Sequence[Chunk], num_tasks: int, num_envs: int
) -> EpisodeBatch:
    """Stack per-chunk arrays (keyed by chunk index) into an EpisodeBatch ``[tasks, envs, time, ...]``."""
    missing = [c for c, _, _ in chunks if c not in results]
    if missing:
        raise EnvError(f"sampler: chunks {missing} were not collected (refusing to return a partial batch)")
    horizon = max(r["rewards"].shape[1] for r in results.values())

    def cat(key: str) -> np.ndarray:
        parts = []
        for c, _, _ in chunks:
            x = results[c][key]
            if key != "last_obs" and x.shape[1] < horizon:  # pad a shorter horizon (defensive)
                pad = np.zeros((x.shape[0], horizon - x.shape[1], *x.shape[2:]), dtype=x.dtype)
                x = np.concatenate([x, pad], axis=1)
            parts.append(x)
        y = np.concatenate(parts, axis=0)
        return y.reshape(num_tasks, num_envs, *y.shape[1:])

    t = lambda k: torch.from_numpy(cat(k))  # noqa: E731
    infos = {"terminated": t("terminated"), "last_obs": t("last_obs")}
    for key in results[chunks[0][0]]:
        if key.startswith("info_"):
            infos[key[5:]] = t(key)
    return EpisodeBatch(
        obs=t("obs"),
        actions=t("actions"),
        rewards=t("rewards"),
        dones=t("dones"),
        mask=t("mask"),
        log_probs=t("log_probs"),
        infos=infos,
    )


def shared_params(policy: nn.Module) -> dict[str, torch.Tensor]:
    """The policy's current parameters and buffers (sent to workers whose forked copy may be stale)."""
    out = {k: v.detach() for k, v in policy.named_parameters()}
    out.update({k: v.detach() for k, v in policy.named_buffers()})
    return out


# ------------------------------------------------------------------------------------------------------
# the worker process
# ------------------------------------------------------------------------------------------------------
def _worker_main(conn: Connection, collector: ChunkCollector, index: int) -> None:
    torch.set_num_threads(1)
    try:
        while True:
            try:
                header, arrays = recv_message(conn)
            except EOFError:
                return
            if header["cmd"] == "close":
                return
            if header["cmd"] == "pid":
                send_message(conn, {"ok": True, "pid": os.getpid()})
                continue
            try:
                result = collector.collect(
                    header["tasks"],
                    params_from_numpy(arrays, "p/"),
                    params_from_numpy(arrays, "s/"),
                    [tuple(c) for c in header["chunks"]],
                    int(header["num_envs"]),
                    int(header["seed"]),
                )
                send_message(conn, {"ok": True}, result)
            except Exception as exc:  # noqa: BLE001 - forwarded to the parent
                is_env = isinstance(exc, EnvError)
                reply = {"ok": False, "error": str(exc) if is_env else f"{type(exc).__name__}: {exc}",
                         "env_error": is_env}
                if isinstance(exc, EnvOutputError):
                    reply["nonfinite"] = [exc.kind, exc.task_index, exc.env_index, exc.step, exc.task]
                send_message(conn, reply)
    finally:
        collector.close()
        conn.close()


class _Worker:
    def __init__(self, ctx: Any, collector: ChunkCollector, index: int) -> None:
        self.index = index
        parent, child = ctx.Pipe(duplex=True)
        self.conn: Connection = parent
        self.process = ctx.Process(
            target=_worker_main, args=(child, collector, index), daemon=True, name=f"fastadapt-sampler-{index}"
        )
        self.process.start()
        child.close()

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def stop(self, timeout: float = 2.0) -> None:
        try:
            if self.process.is_alive():
                send_message(self.conn, {"cmd": "close"})
        except (OSError, BrokenPipeError):
            pass
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout)
        self.conn.close()


class ProcessSampler:
    """Collects one episode per ``(task, env)`` pair on worker processes (see the module docstring).

    Args:
        envs: a task family with ``make_env()`` or a callable returning a single gymnasium env whose task is
            set by ``reset(options={"task": task})``.
        policy: a ``fastadapt.nn.policies`` module (``forward``, ``sample(out, generator)``, ``log_prob``,
            ``mode``).
        num_envs: episodes per task.
        horizon: steps per episode (default: the env's ``spec.max_episode_steps`` or ``horizon``).
        num_workers: worker processes (0: collect in the calling process).
        chunk_size: pairs stepped together (default ``num_envs``); the batch depends on it, not on workers.
        deterministic: act with ``policy.mode``.
        info_keys: per-step ``info`` entries to record as ``batch.infos[key] [T, E, H]`` (e.g. ``success``).
        max_restarts: restarts allowed per ``sample`` call before giving up with EnvError.
        timeout_s: seconds to wait for a worker's share before treating it as hung (None: no limit).
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
        timeout_s: float | None = None,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self.env_fn: Callable[[], Any] = envs.make_env if hasattr(envs, "make_env") else envs
        if not callable(self.env_fn):
            raise TypeError("envs: expected a task family with .make_env() or a callable returning an env")
        self.policy = policy
        self.num_envs = int(num_envs)
        self.num_workers = int(num_workers)
        self.chunk_size = chunk_size
        self.max_restarts = int(max_restarts)
        self.timeout_s = timeout_s
        if horizon is None and isinstance(getattr(envs, "max_episode_steps", None), int):
            horizon = int(envs.max_episode_steps)
        self.collector = ChunkCollector(self.env_fn, policy, horizon, deterministic, info_keys)
        self.restarts: list[dict[str, Any]] = []
        self._ctx = mp.get_context("fork")
        self._workers: list[_Worker] = []

    # -- worker management ------------------------------------------------------------------------------
    def _start(self) -> None:
        if not self._workers and self.num_workers > 0:
            self._workers = [_Worker(self._ctx, self.collector, i) for i in range(self.num_workers)]

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (starts them if needed)."""
        self._start()
        return [int(w.pid) for w in self._workers if w.pid is not None]

    def close(self) -> None:
        """Stop the workers and close the envs."""
        for w in self._workers:
            w.stop()
        self._workers = []
        self.collector.close()

    def __enter__(self) -> ProcessSampler:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    # -- sampling ---------------------------------------------------------------------------------------
    def sample(
        self, tasks: Sequence[Any], params: dict[str, torch.Tensor] | None = None, seed: int = 0
    ) -> EpisodeBatch:
        """One episode per env for every task: an EpisodeBatch with ``[tasks, envs, time, ...]`` tensors."""
        num_tasks = len(tasks)
        if num_tasks < 1:
            raise ValueError("tasks: expected at least one task")
        check_params(params, num_tasks)
        tasks_json = [task_to_json(t) for t in tasks]
        chunks = make_chunks(num_tasks, self.num_envs, self.chunk_size)
        shared = shared_params(self.policy)
        if self.num_workers == 0:
            result = self.collector.collect(tasks_json, params, shared, chunks, self.num_envs, seed)
            results = split_result(result, chunks)
            return assemble(results, chunks, num_tasks, self.num_envs)
        self._start()
        shares = assign_chunks(chunks, len(self._workers))
        arrays = {**params_to_numpy(params, "p/"), **params_to_numpy(shared, "s/")}
        header = {"cmd": "collect", "tasks": tasks_json, "num_envs": self.num_envs, "seed": int(seed)}
        results: dict[int, dict[str, np.ndarray]] = {}
        pending: dict[int, list[Chunk]] = {}
        started: dict[int, float] = {}
        for w, share in zip(self._workers, shares):
            if share:
                self._send_job(w, header, share, arrays, pending, started)
        restarts_this_call = 0
        while pending:
            by_conn = {self._workers[i].conn: i for i in pending}
            by_sentinel = {self._workers[i].process.sentinel: i for i in pending}
            ready = wait(list(by_conn) + list(by_sentinel), timeout=1.0)
            died: set[int] = set()
            for obj in ready:
                i = by_conn.get(obj) if obj in by_conn else by_sentinel[obj]
                if i not in pending or i in died:
                    continue
                w = self._workers[i]
                if obj in by_conn:
                    try:
                        reply, data = recv_message(w.conn)
                    except (EOFError, OSError, ConnectionResetError):
                        died.add(i)
                        continue
                    if not reply.get("ok", False):
                        self.close()  # the other workers' shares are dropped: never a partial batch
                        if reply.get("nonfinite"):
                            kind, t, e, step, desc = reply["nonfinite"]
                            raise EnvOutputError(str(kind), int(t), int(e), int(step), str(desc))
                        msg = reply.get("error", "unknown error")
                        raise EnvError(msg if reply.get("env_error") else f"sampler worker {i}: {msg}")
                    results.update(split_result(data, pending.pop(i)))
                else:
                    w.process.join(0.1)
                    if not w.conn.poll():
                        died.add(i)
            if self.timeout_s is not None:
                now = time.monotonic()
                for i in list(pending):
                    if now - started[i] > self.timeout_s and i not in died:
                        log.warning("process sampler: worker %d hung for %.0f s; killing it", i, self.timeout_s)
                        self._workers[i].process.kill()
                        self._workers[i].process.join(2.0)
                        died.add(i)
            for i in sorted(died):
                restarts_this_call += 1
                old = self._workers[i]
                share = pending[i]
                tasks_hit = sorted({p // self.num_envs for _, s, e in share for p in range(s, e)})
                if restarts_this_call > self.max_restarts:
                    self.close()
                    raise EnvError(
                        f"sampler worker {i} died (exit code {old.process.exitcode}) and the restart budget "
                        f"({self.max_restarts}) is spent; tasks {tasks_hit} were not collected"
                    )
                old.process.join(1.0)
                code = old.process.exitcode
                old_pid = old.pid
                old.stop(timeout=1.0)
                new = _Worker(self._ctx, self.collector, i)
                self._workers[i] = new
                event = {"worker": i, "old_pid": old_pid, "new_pid": new.pid, "exit_code": code,
                         "tasks": tasks_hit, "chunks": [c for c, _, _ in share]}
                self.restarts.append(event)
                log.warning(
                    "process sampler: worker %d (pid %s) died with exit code %s while collecting tasks %s; "
                    "restarted it as pid %s and re-collecting its whole share",
                    i, old_pid, code, tasks_hit, new.pid,
                )
                self._send_job(new, header, share, arrays, pending, started)
        return assemble(results, chunks, num_tasks, self.num_envs)

    def _send_job(
        self,
        w: _Worker,
        header: dict[str, Any],
        share: list[Chunk],
        arrays: dict[str, np.ndarray],
        pending: dict[int, list[Chunk]],
        started: dict[int, float],
    ) -> None:
        pending[w.index] = share
        started[w.index] = time.monotonic()
        try:
            send_message(w.conn, {**header, "chunks": [list(c) for c in share]}, arrays)
        except (BrokenPipeError, OSError):
            pass  # the worker is dead; the wait loop notices through its sentinel and restarts it


def assign_chunks(chunks: Sequence[Chunk], num_workers: int) -> list[list[Chunk]]:
    """Contiguous, balanced shares of the chunks for ``num_workers`` workers (some may be empty)."""
    shares: list[list[Chunk]] = []
    n = len(chunks)
    for w in range(num_workers):
        lo, hi = (w * n) // num_workers, ((w + 1) * n) // num_workers
        shares.append(list(chunks[lo:hi]))
    return shares


def split_result(data: dict[str, np.ndarray], share: Sequence[Chunk]) -> dict[int, dict[str, np.ndarray]]:
    """Cut a worker's concatenated arrays back into per-chunk arrays."""
    out: dict[int, dict[str, np.ndarray]] = {}
    offset = 0
    for c, s, e in share:
        n = e - s
        out[c] = {k: v[offset:offset + n] for k, v in data.items()}
        offset += n
    return out


__all__ = [
    "ChunkCollector",
    "ProcessSampler",
    "assemble",
    "assign_chunks",
    "make_chunks",
    "recv_message",
    "send_message",
    "task_to_json",
]
