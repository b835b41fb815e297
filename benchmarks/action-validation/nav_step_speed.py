"""navigation2d batched step speed before/after the action checks of issue 9 (NaN/Inf rejection).

1. Bare env step: the "before" step is HEAD's ``Navigation2DBatchedEnv.step`` (commit 4075f1b) copied
   verbatim below; the "after" step is the current one. Both run on the same env object.
2. Whole VectorSampler.sample (MAML's navigation setting: 20 tasks x 20 envs, horizon 100, 64x64 Gaussian
   policy): "before" is HEAD's ``samplers/vector.py`` (loaded from ``git show 4075f1b:...``) driving the
   HEAD env step; "after" is the current sampler (one fused finiteness sum instead of two
   ``isfinite().all()``) driving the current env step.

"before" and "after" alternate round by round in one process (one intra-op thread), so machine load
affects them alike. Prints a JSON summary (median and best of the rounds) per setting.

    nice -n 10 .venv/bin/python benchmarks/action-validation/nav_step_speed.py > benchmarks/action-validation/nav_step_speed.json
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
import types
from pathlib import Path
from typing import Any

import torch

from fastadapt.tasks.rl.navigation2d import _NEAR, GOAL_TOLERANCE, Navigation2D, Navigation2DBatchedEnv
from fastadapt.core.errors import EnvError


def old_step(self: Navigation2DBatchedEnv, actions: torch.Tensor) -> Any:
    """HEAD's step (before this change), verbatim."""
    if actions.shape != (self.num_tasks, self.num_envs, 2):
        raise EnvError(
            f"navigation2d batched env: actions must be [{self.num_tasks}, {self.num_envs}, 2], "
            f"got {tuple(actions.shape)}"
        )
    m = self.max_action
    if actions.dtype != torch.float32:
        actions = actions.to(torch.float32)
    self._planes = self._planes + torch.clamp(actions, -m, m).permute(2, 0, 1)
    d = self._planes - self._goal_planes
    dist = (d * d).sum(0).sqrt_()
    if self.sparse:
        reward = torch.where(dist <= self.goal_radius, 1.0 - dist, self._zero)
    else:
        reward = dist.neg_()
    terminated = self._false
    if self.terminate_at_goal and reward.max().item() > -_NEAR:
        ad = d.abs()
        terminated = (ad[0] < GOAL_TOLERANCE) & (ad[1] < GOAL_TOLERANCE)
    self._t += 1
    truncated = self._false
    if self._t >= self.max_episode_steps:
        truncated = ~terminated
    return self.state, reward, terminated, truncated, {}


def bench(T: int, E: int, sparse: bool, steps: int, rounds: int) -> dict[str, Any]:
    dist = Navigation2D(sparse=sparse)
    env = dist.batched_env(T, E)
    env.set_tasks(dist.sample(T, seed=0))
    gen = torch.Generator().manual_seed(0)
    acts = [torch.empty(T, E, 2).uniform_(-0.15, 0.15, generator=gen) for _ in range(64)]
    fns = {"before": lambda a: old_step(env, a), "after": env.step}
    times: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(rounds):
        for name in (("before", "after") if r % 2 == 0 else ("after", "before")):
            f = fns[name]
            env.reset(seed=0)
            t0 = time.perf_counter()
            for i in range(steps):
                if env._t >= env.max_episode_steps:
                    env.reset()
                f(acts[i % 64])
            times[name].append((time.perf_counter() - t0) / steps * 1e6)
    out: dict[str, Any] = {"tasks": T, "envs": E, "sparse": sparse, "steps_per_round": steps, "rounds": rounds}
    for k, v in times.items():
        out[k] = {"median_us_per_step": round(statistics.median(v), 2), "best_us_per_step": round(min(v), 2),
                  "median_env_steps_per_s": round(T * E / statistics.median(v) * 1e6)}
    out["after_over_before_median"] = round(statistics.median(times["after"]) / statistics.median(times["before"]), 3)
    out["after_over_before_best"] = round(min(times["after"]) / min(times["before"]), 3)
    return out


HEAD = "4075f1b"


def head_module(path: str, name: str) -> types.ModuleType:
    """A module built from ``git show HEAD:path`` (the code before this change)."""
    root = Path(__file__).resolve().parents[2]
    src = subprocess.run(["git", "show", f"{HEAD}:{path}"], cwd=root, capture_output=True, text=True,
                         check=True).stdout
    mod = types.ModuleType(name)
    exec(compile(src, f"{HEAD}:{path}", "exec"), mod.__dict__)  # noqa: S102 - our own repository's code
    return mod


class HeadNav(Navigation2DBatchedEnv):
    step = old_step


def bench_sampler(rounds: int) -> dict[str, Any]:
    from fastadapt.nn.policies import GaussianMLPPolicy
    from fastadapt.samplers.vector import VectorSampler

    old_vector = head_module("src/fastadapt/samplers/vector.py", "head_vector")
    dist = Navigation2D()
    kw = dist.env_kwargs()
    kw.pop("goal_low")
    kw.pop("goal_high")
    policy = GaussianMLPPolicy(2, 2, hidden=(64, 64), generator=torch.Generator().manual_seed(0))
    samplers = {
        "before": old_vector.VectorSampler(lambda t, e: HeadNav(t, e, **kw), policy, num_envs=20),
        "after": VectorSampler(dist, policy, num_envs=20),
    }
    tasks = dist.sample(20, seed=0)
    times: dict[str, list[float]] = {k: [] for k in samplers}
    batches = {}
    for r in range(rounds):
        for name in (("before", "after") if r % 2 == 0 else ("after", "before")):
            t0 = time.perf_counter()
            batches[name] = samplers[name].sample(tasks, None, seed=r)
            times[name].append(time.perf_counter() - t0)
    same = all(torch.equal(getattr(batches["before"], k), getattr(batches["after"], k))
               for k in ("obs", "actions", "rewards", "mask", "log_probs"))
    out: dict[str, Any] = {"setting": "VectorSampler.sample, 20 tasks x 20 envs x 100 steps, 64x64 policy",
                           "rounds": rounds, "identical_batches": same}
    for k, v in times.items():
        out[k] = {"median_ms_per_sample": round(statistics.median(v) * 1e3, 2),
                  "best_ms_per_sample": round(min(v) * 1e3, 2)}
    out["after_over_before_median"] = round(statistics.median(times["after"]) / statistics.median(times["before"]), 3)
    out["after_over_before_best"] = round(min(times["after"]) / min(times["before"]), 3)
    return out


def main() -> None:
    torch.set_num_threads(1)
    t0, c0 = time.time(), time.process_time()
    load0 = os.getloadavg()
    results = [bench(T, E, sparse, steps=2000, rounds=11)
               for T, E, sparse in ((1, 1, False), (32, 32, False), (32, 32, True), (200, 50, False))]
    sampler = bench_sampler(rounds=11)
    print(json.dumps({"env_step": results, "sampler": sampler, "wall_s": round(time.time() - t0, 1),
                      "cpu_s": round(time.process_time() - c0, 1), "loadavg_start": load0,
                      "loadavg_end": os.getloadavg(), "head_commit": HEAD}, indent=1))


if __name__ == "__main__":
    main()
