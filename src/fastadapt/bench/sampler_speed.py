"""``fastadapt bench sampler-speed``: environment throughput of the batched envs and the samplers.

Two side-by-side measurements in one run (issue 3, "Speed"); ``mean`` is env-steps per second, ``se`` its
standard error over ``repeats`` timed repetitions, ``n = repeats``:

1. ``fastadapt_batched`` vs ``gymnasium_sync``, setting ``{"env": "navigation2d", "envs": 1024}``: the
   batched torch 2D-navigation env (``tasks x envs_per_task = 1024`` points, one ``step`` per time step,
   random actions from a torch generator, ``reset`` every ``horizon`` steps) against gymnasium's
   ``SyncVectorEnv`` over 1024 single ``fastadapt/Navigation2D-v0`` envs (random numpy actions, the vector
   env's own autoreset). Target: ratio >= 300x.
2. ``fastadapt_sampler`` vs ``bare_env_loop``, setting ``{"env": "halfcheetah-vel"}``: full episode
   collection of HalfCheetah-Vel through :class:`~fastadapt.samplers.ProcessSampler` with a
   ``GaussianMLPPolicy(17, 6, (64, 64))`` (policy forward, sampling, log-probs, recording, IPC) against a
   loop that only steps one ``fastadapt/HalfCheetahVel-v0`` env with random actions. Target: ratio >= 0.8.
   The sampler row's ``extra`` also reports the same collection with ``num_workers=0`` (in the calling
   process), i.e. the per-core overhead of the sampler. Skipped with a note when mujoco is missing.

``torch.set_num_threads(1)`` is used during the measurement (faster on this 2-core machine).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from pydantic import Field

from fastadapt.core.config import Section
from fastadapt.core.registry import register_benchmark
from fastadapt.core.types import BenchContext, Row


class SamplerSpeedConfig(Section):
    """Knobs of ``sampler-speed`` (``fastadapt bench sampler-speed --set key=value``)."""

    nav_tasks: int = Field(32, ge=1, description="navigation2d tasks (x nav_envs_per_task = parallel envs)")
    nav_envs_per_task: int = Field(32, ge=1)
    nav_batched_steps: int = Field(2000, ge=1, description="time steps per timed repetition (batched)")
    nav_sync_steps: int = Field(100, ge=1, description="time steps per timed repetition (SyncVectorEnv)")
    cheetah: bool = Field(True, description="also measure HalfCheetah-Vel (needs mujoco)")
    cheetah_tasks: int = Field(2, ge=1)
    cheetah_envs_per_task: int = Field(20, ge=1, description="episodes per task (MAML: 20)")
    cheetah_horizon: int = Field(200, ge=1)
    cheetah_workers: int = Field(2, ge=1, description="ProcessSampler worker processes")
    cheetah_chunk_size: int = Field(10, ge=1, description="envs stepped in lock-step per policy forward")
    bare_steps: int = Field(4000, ge=1, description="env steps per timed repetition of the bare loop")
    repeats: int = Field(5, ge=2)
    threads: int = Field(1, ge=1, description="torch threads during the measurement")


def _stats(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1) / math.sqrt(len(arr)))


def _time_interleaved(
    fns: dict[str, Callable[[], int]], repeats: int, track: Any, label: str
) -> dict[str, list[float]]:
    """Env-steps/s of each ``fn`` (returning the env steps it made) over ``repeats`` rounds after one
    warm-up round; within a round the contenders run back to back, so they see the same machine load."""
    for fn in fns.values():
        fn()
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in track(range(repeats), description=label, total=repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            steps = fn()
            out[k].append(steps / (time.perf_counter() - t0))
    return out


def measure_navigation(cfg: SamplerSpeedConfig, ctx: BenchContext) -> list[Row]:
    import gymnasium as gym

    from fastadapt.core.seeding import np_rng, torch_gen
    from fastadapt.tasks.rl.navigation2d import Navigation2D, Navigation2DEnv

    dist = Navigation2D()
    T, E = cfg.nav_tasks, cfg.nav_envs_per_task
    n_envs = T * E
    tasks = dist.sample(T, seed=ctx.seed)
    horizon = dist.horizon

    env = dist.batched_env(T, E)
    env.set_tasks(tasks)
    gen = torch_gen(ctx.seed, "bench-nav")
    a = torch.empty(T, E, 2)

    def batched() -> int:
        env.reset(seed=0)
        for t in range(cfg.nav_batched_steps):
            if t and t % horizon == 0:
                env.reset()
            env.step(a.uniform_(-0.1, 0.1, generator=gen))
        return cfg.nav_batched_steps * n_envs

    kw = dist.env_kwargs()
    vec = gym.vector.SyncVectorEnv([lambda: Navigation2DEnv(**kw) for _ in range(n_envs)])
    for i, sub in enumerate(vec.envs):
        sub.unwrapped.reset(options={"task": tasks[i // E]})
    rng = np_rng(ctx.seed, "bench-nav-sync")

    def sync() -> int:
        vec.reset(seed=0)
        for _ in range(cfg.nav_sync_steps):
            vec.step(rng.uniform(-0.1, 0.1, size=(n_envs, 2)).astype(np.float32))
        return cfg.nav_sync_steps * n_envs

    res = _time_interleaved({"batched": batched, "sync": sync}, cfg.repeats, ctx.track, "navigation2d")
    b, s = res["batched"], res["sync"]
    vec.close()
    setting = {"env": "navigation2d", "envs": n_envs}
    bm, bse = _stats(b)
    sm, sse = _stats(s)
    ctx.notes.append(
        f"navigation2d, {n_envs} parallel envs ({T} tasks x {E}): batched torch env {bm:,.0f} env-steps/s vs "
        f"gymnasium SyncVectorEnv {sm:,.0f} env-steps/s: ratio {bm / sm:.0f}x (target >= 300x)."
    )
    return [
        Row("fastadapt_batched", setting, bm, bse, cfg.repeats,
            {"steps_per_repeat": cfg.nav_batched_steps * n_envs, "ratio_vs_gymnasium_sync": bm / sm}),
        Row("gymnasium_sync", setting, sm, sse, cfg.repeats, {"steps_per_repeat": cfg.nav_sync_steps * n_envs}),
    ]


def measure_cheetah(cfg: SamplerSpeedConfig, ctx: BenchContext) -> list[Row]:
    try:
        import mujoco  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - optional dependency
        ctx.notes.append(f"halfcheetah-vel skipped: mujoco is not available ({type(exc).__name__}: {exc}).")
        return []
    from fastadapt.core.seeding import np_rng, torch_gen
    from fastadapt.nn.policies import GaussianMLPPolicy
    from fastadapt.samplers.process import ProcessSampler
    from fastadapt.tasks.rl.mujoco.cheetah import HalfCheetahVel, HalfCheetahVelConfig

    dist = HalfCheetahVel(HalfCheetahVelConfig(horizon=cfg.cheetah_horizon))
    tasks = dist.sample(cfg.cheetah_tasks, seed=ctx.seed)
    policy = GaussianMLPPolicy(17, 6, hidden=(64, 64), generator=torch_gen(ctx.seed, "bench-policy"))

    env = dist.make_env()
    rng = np_rng(ctx.seed, "bench-bare")
    state = {"task": 0}

    def bare() -> int:
        env.reset(seed=0, options={"task": tasks[state["task"] % len(tasks)]})
        state["task"] += 1
        for _ in range(cfg.bare_steps):
            _, _, term, trunc, _ = env.step(rng.uniform(-1.0, 1.0, size=6).astype(np.float32))
            if term or trunc:
                env.reset(options={"task": tasks[state["task"] % len(tasks)]})
                state["task"] += 1
        return cfg.bare_steps

    def collector(sampler: ProcessSampler) -> Callable[[], int]:
        seed = {"s": 0}

        def run() -> int:
            seed["s"] += 1
            return sampler.sample(tasks, None, seed=seed["s"]).env_steps()

        return run

    local = ProcessSampler(dist, policy, num_envs=cfg.cheetah_envs_per_task, num_workers=0,
                           chunk_size=cfg.cheetah_chunk_size)
    with ProcessSampler(dist, policy, num_envs=cfg.cheetah_envs_per_task, num_workers=cfg.cheetah_workers,
                        chunk_size=cfg.cheetah_chunk_size) as sampler:
        res = _time_interleaved(
            {"bare": bare, "process": collector(sampler), "local": collector(local)},
            cfg.repeats, ctx.track, "halfcheetah-vel",
        )
    local.close()
    env.close()
    bare_rates, proc_rates, local_rates = res["bare"], res["process"], res["local"]
    pm, pse = _stats(proc_rates)
    bm, bse = _stats(bare_rates)
    lm, lse = _stats(local_rates)
    setting = {"env": "halfcheetah-vel"}
    per_call = cfg.cheetah_tasks * cfg.cheetah_envs_per_task * cfg.cheetah_horizon
    ctx.notes.append(
        f"halfcheetah-vel: ProcessSampler ({cfg.cheetah_workers} workers, {cfg.cheetah_tasks} tasks x "
        f"{cfg.cheetah_envs_per_task} envs x {cfg.cheetah_horizon} steps per call, chunks of "
        f"{cfg.cheetah_chunk_size} envs, MLP policy 64x64) "
        f"{pm:,.0f} env-steps/s vs bare single-env random-action loop {bm:,.0f} env-steps/s: ratio "
        f"{pm / bm:.2f} (target >= 0.8). The same sampler collecting in the calling process (num_workers=0, "
        f"one core) reaches {lm:,.0f} env-steps/s, ratio {lm / bm:.2f}: that is the per-core cost of the "
        "policy forward, sampling and recording."
    )
    return [
        Row("fastadapt_sampler", setting, pm, pse, cfg.repeats, {
            "engine": "process", "workers": cfg.cheetah_workers, "chunk_size": cfg.cheetah_chunk_size,
            "steps_per_repeat": per_call,
            "ratio_vs_bare_loop": pm / bm, "inprocess_steps_per_s": lm, "inprocess_se": lse,
            "inprocess_ratio_vs_bare_loop": lm / bm,
        }),
        Row("bare_env_loop", setting, bm, bse, cfg.repeats, {"steps_per_repeat": cfg.bare_steps}),
    ]


@register_benchmark("sampler-speed", config=SamplerSpeedConfig)
def run_sampler_speed(cfg: SamplerSpeedConfig, ctx: BenchContext) -> list[Row]:
    """Env-steps/s: batched navigation2d vs SyncVectorEnv, and the HalfCheetah-Vel sampler vs a bare loop."""
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        rows = measure_navigation(cfg, ctx)
        if cfg.cheetah:
            rows += measure_cheetah(cfg, ctx)
    finally:
        torch.set_num_threads(threads)
    try:
        load = open("/proc/loadavg").read().split()[:3]
        ctx.notes.append(f"Machine load average (1/5/15 min) at the end: {' '.join(load)}; "
                         f"{__import__('os').cpu_count()} CPUs.")
    except OSError:
        pass
    return rows


__all__ = ["SamplerSpeedConfig", "measure_cheetah", "measure_navigation", "run_sampler_speed"]
