"""Process sampler: same batch for any worker count, real worker deaths recovered, errors name the culprit."""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from fastadapt.core.errors import EnvError
from fastadapt.nn.policies import CategoricalMLPPolicy, GaussianMLPPolicy
from fastadapt.samplers import ProcessSampler, VectorSampler
from fastadapt.samplers.process import make_chunks, recv_message, send_message
from fastadapt.tasks.rl.gridworld import Gridworld
from fastadapt.tasks.rl.navigation2d import Navigation2D

HORIZON = 20


def _policy() -> GaussianMLPPolicy:
    return GaussianMLPPolicy(2, 2, hidden=(16,), init_log_std=-1.0, generator=torch.Generator().manual_seed(0))


def _params(policy: torch.nn.Module, num_tasks: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return {k: v.detach() + 0.2 * torch.randn((num_tasks, *v.shape), generator=gen)
            for k, v in policy.named_parameters()}


def _assert_same(a: Any, b: Any) -> None:
    for k in ("obs", "actions", "rewards", "dones", "mask", "log_probs"):
        assert torch.equal(getattr(a, k), getattr(b, k)), k
    assert torch.equal(a.infos["last_obs"], b.infos["last_obs"])


def test_same_batch_for_any_number_of_workers() -> None:
    dist = Navigation2D(horizon=HORIZON)
    policy = _policy()
    tasks = dist.sample(5, seed=0)
    params = _params(policy, 5)
    ref = ProcessSampler(dist, policy, num_envs=3, num_workers=0).sample(tasks, params, seed=11)
    assert ref.obs.shape == (5, 3, HORIZON, 2) and ref.log_probs.shape == (5, 3, HORIZON)
    with ProcessSampler(dist, policy, num_envs=3, num_workers=2) as s2:
        b2 = s2.sample(tasks, params, seed=11)
        _assert_same(ref, b2)
        again = s2.sample(tasks, params, seed=11)  # persistent workers, same seed => same batch
        _assert_same(ref, again)
        assert not torch.equal(s2.sample(tasks, params, seed=12).actions, ref.actions)
    with ProcessSampler(dist, policy, num_envs=3, num_workers=3) as s3:
        _assert_same(ref, s3.sample(tasks, params, seed=11))
    # chunks spanning tasks go through the vmapped per-pair forward; log-probs still match the policy
    b = ProcessSampler(dist, policy, num_envs=3, num_workers=0, chunk_size=4).sample(tasks, params, seed=11)
    for t in range(5):
        out = torch.func.functional_call(policy, {k: v[t] for k, v in params.items()}, (b.obs[t],))
        assert torch.allclose(policy.log_prob(out, b.actions[t]) * b.mask[t], b.log_probs[t], atol=1e-5)


def test_rewards_match_the_batched_env_for_recorded_actions() -> None:
    dist = Navigation2D(horizon=HORIZON)
    tasks = dist.sample(3, seed=2)
    with ProcessSampler(dist, _policy(), num_envs=2, num_workers=2) as s:
        b = s.sample(tasks, None, seed=0)
    env = dist.batched_env(3, 2)
    env.set_tasks(tasks)
    env.reset(seed=0)
    for t in range(HORIZON):
        obs, rew, *_ = env.step(b.actions[:, :, t])
        assert torch.allclose(rew * b.mask[:, :, t], b.rewards[:, :, t], atol=1e-6)


def test_policy_updates_reach_the_workers() -> None:
    dist = Navigation2D(horizon=HORIZON)
    policy = _policy()
    tasks = dist.sample(2, seed=0)
    with ProcessSampler(dist, policy, num_envs=2, num_workers=2) as s:
        first = s.sample(tasks, None, seed=0)
        with torch.no_grad():
            for p in policy.parameters():
                p.add_(0.5)
        second = s.sample(tasks, None, seed=0)
    local = ProcessSampler(dist, policy, num_envs=2, num_workers=0).sample(tasks, None, seed=0)
    _assert_same(second, local)
    assert not torch.equal(first.actions, second.actions)


def test_discrete_actions_and_wire_format() -> None:
    dist = Gridworld()
    policy = CategoricalMLPPolicy(2, 5, hidden=(8,))
    with ProcessSampler(dist, policy, num_envs=2, num_workers=2) as s:
        b = s.sample(dist.sample(3, seed=0), None, seed=0)
    assert b.actions.dtype == torch.int64 and b.actions.shape == (3, 2, 15)
    assert b.mask.sum() == 3 * 2 * 15
    a, c = torch.multiprocessing.Pipe()
    send_message(a, {"x": 1}, {"arr": np.arange(6, dtype=np.float32).reshape(2, 3)})
    header, arrays = recv_message(c)
    assert header == {"x": 1} and arrays["arr"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert make_chunks(2, 3, None) == [(0, 0, 3), (1, 3, 6)]


def test_externally_killed_worker_is_restarted(caplog: pytest.LogCaptureFixture) -> None:
    dist = Navigation2D(horizon=HORIZON)
    policy = _policy()
    tasks = dist.sample(4, seed=0)
    ref = ProcessSampler(dist, policy, num_envs=2, num_workers=0).sample(tasks, None, seed=3)
    with ProcessSampler(dist, policy, num_envs=2, num_workers=2) as s:
        s.sample(tasks, None, seed=3)
        victim = s.worker_pids[1]
        os.kill(victim, signal.SIGKILL)
        time.sleep(0.2)
        with caplog.at_level(logging.WARNING, logger="fastadapt.samplers.process"):
            b = s.sample(tasks, None, seed=3)
        assert victim not in s.worker_pids
    _assert_same(ref, b)
    assert len(s.restarts) == 1 and s.restarts[0]["old_pid"] == victim and s.restarts[0]["tasks"] == [2, 3]
    assert "died" in caplog.text and "re-collecting" in caplog.text


class _DiesOnce(gym.Wrapper):
    """Kills its own (worker) process with SIGKILL the first time it steps task 1, once per marker file."""

    def __init__(self, env: gym.Env, marker: Path, parent_pid: int) -> None:
        super().__init__(env)
        self.marker, self.parent_pid = marker, parent_pid
        self.goal: list[float] | None = None

    def reset(self, **kw: Any) -> Any:
        self.goal = list(kw["options"]["task"]["goal"])
        return self.env.reset(**kw)

    def step(self, action: Any) -> Any:
        if os.getpid() != self.parent_pid and self.goal == self.kill_goal and not self.marker.exists():
            self.marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return self.env.step(action)


def test_worker_killed_mid_collection_share_is_recollected(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dist = Navigation2D(horizon=HORIZON)
    policy = _policy()
    tasks = dist.sample(4, seed=0)
    marker = tmp_path / "killed"
    parent = os.getpid()

    def make() -> gym.Env:
        env = _DiesOnce(dist.make_env(), marker, parent)
        env.kill_goal = list(tasks[1].to_dict()["goal"])
        return env

    ref = ProcessSampler(make, policy, num_envs=2, num_workers=0).sample(tasks, None, seed=5)
    with caplog.at_level(logging.WARNING, logger="fastadapt.samplers.process"):
        with ProcessSampler(make, policy, num_envs=2, num_workers=2) as s:
            b = s.sample(tasks, None, seed=5)
    assert marker.exists(), "the worker should have killed itself"
    assert len(s.restarts) == 1 and s.restarts[0]["exit_code"] == -signal.SIGKILL
    assert s.restarts[0]["tasks"] == [0, 1]
    assert "worker 0" in caplog.text
    _assert_same(ref, b)


class _Broken(gym.Wrapper):
    def reset(self, **kw: Any) -> Any:
        self.bad = kw["options"]["task"]["goal"][0] > 0.0
        return self.env.reset(**kw)

    def step(self, action: Any) -> Any:
        if self.bad:
            raise RuntimeError("simulator exploded")
        return self.env.step(action)


def test_env_errors_name_task_and_env() -> None:
    dist = Navigation2D(horizon=HORIZON)
    tasks = [{"goal": [-0.2, 0.0]}, {"goal": [0.3, 0.0]}]
    with ProcessSampler(lambda: _Broken(dist.make_env()), _policy(), num_envs=2, num_workers=2) as s:
        with pytest.raises(EnvError, match=r"task 1 env 0: step 0 failed: RuntimeError: simulator exploded"):
            s.sample(tasks, None, seed=0)
    with pytest.raises(EnvError, match="task 1 env 0"):
        ProcessSampler(lambda: _Broken(dist.make_env()), _policy(), num_envs=2, num_workers=0).sample(
            tasks, None, seed=0
        )


def test_same_layout_as_vector_sampler() -> None:
    dist = Navigation2D(horizon=HORIZON)
    tasks = dist.sample(2, seed=0)
    v = VectorSampler(dist, _policy(), num_envs=2).sample(tasks, None, seed=0)
    p = ProcessSampler(dist, _policy(), num_envs=2, num_workers=0).sample(tasks, None, seed=0)
    for k in ("obs", "actions", "rewards", "dones", "mask", "log_probs"):
        assert getattr(v, k).shape == getattr(p, k).shape and getattr(v, k).dtype == getattr(p, k).dtype, k
    assert set(v.infos) <= set(p.infos)


class _HangsOnce(gym.Wrapper):
    """Hangs (sleeps) the first time a worker steps task 0, once per marker file."""

    def __init__(self, env: gym.Env, marker: Path, parent_pid: int) -> None:
        super().__init__(env)
        self.marker, self.parent_pid = marker, parent_pid

    def step(self, action: Any) -> Any:
        if os.getpid() != self.parent_pid and not self.marker.exists():
            self.marker.touch()
            time.sleep(120)
        return self.env.step(action)


def test_hung_worker_is_killed_after_timeout_and_restarted(tmp_path: Path) -> None:
    dist = Navigation2D(horizon=5)
    policy = _policy()
    tasks = dist.sample(2, seed=0)
    marker, parent = tmp_path / "hung", os.getpid()
    make = lambda: _HangsOnce(dist.make_env(), marker, parent)  # noqa: E731
    ref = ProcessSampler(make, policy, num_envs=1, num_workers=0).sample(tasks, None, seed=1)
    t0 = time.monotonic()
    with ProcessSampler(make, policy, num_envs=1, num_workers=1, timeout_s=2.0) as s:
        b = s.sample(tasks, None, seed=1)
    assert time.monotonic() - t0 < 60 and marker.exists()
    assert len(s.restarts) == 1 and s.restarts[0]["exit_code"] == -signal.SIGKILL
    _assert_same(ref, b)
