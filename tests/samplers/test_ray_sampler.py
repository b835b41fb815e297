"""Ray sampler on a local Ray with 2 CPUs: same seeds => same batch as the process sampler; dead actors."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from fastadapt.core.errors import EnvError
from fastadapt.nn.policies import GaussianMLPPolicy
from fastadapt.samplers import ProcessSampler, RaySampler
from fastadapt.tasks.rl.navigation2d import Navigation2D

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray")

HORIZON = 15


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    tmp = Path("/tmp") / f"fa-ray-{os.getpid()}"  # short: Ray's socket paths have a length limit
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=str(tmp))
    yield
    ray.shutdown()


def _policy() -> GaussianMLPPolicy:
    return GaussianMLPPolicy(2, 2, hidden=(16,), init_log_std=-1.0, generator=torch.Generator().manual_seed(0))


def _same(a: object, b: object) -> None:
    for k in ("obs", "actions", "rewards", "dones", "mask", "log_probs"):
        assert torch.equal(getattr(a, k), getattr(b, k)), k


def test_same_batch_as_process_sampler(local_ray: None) -> None:
    dist = Navigation2D(horizon=HORIZON)
    policy = _policy()
    tasks = dist.sample(4, seed=0)
    gen = torch.Generator().manual_seed(3)
    params = {k: v.detach() + 0.1 * torch.randn((4, *v.shape), generator=gen) for k, v in policy.named_parameters()}
    with ProcessSampler(dist, policy, num_envs=3, num_workers=2) as ps:
        ref = ps.sample(tasks, params, seed=9)
        ref_none = ps.sample(tasks, None, seed=9)
    with RaySampler(dist, policy, num_envs=3, num_workers=2) as rs:
        _same(ref, rs.sample(tasks, params, seed=9))
        _same(ref_none, rs.sample(tasks, None, seed=9))
        assert len(set(rs.worker_pids)) == 2


def test_dead_actor_is_replaced_and_share_recollected(local_ray: None) -> None:
    dist = Navigation2D(horizon=HORIZON)
    policy = _policy()
    tasks = dist.sample(4, seed=1)
    ref = ProcessSampler(dist, policy, num_envs=2, num_workers=0).sample(tasks, None, seed=4)
    with RaySampler(dist, policy, num_envs=2, num_workers=2) as rs:
        rs.sample(tasks, None, seed=4)
        victim = rs.worker_pids[0]
        os.kill(victim, signal.SIGKILL)
        time.sleep(0.5)
        b = rs.sample(tasks, None, seed=4)
        assert victim not in rs.worker_pids
    assert rs.restarts and rs.restarts[0]["tasks"] == [0, 1]
    _same(ref, b)


def test_env_errors_name_the_task(local_ray: None) -> None:
    dist = Navigation2D(horizon=HORIZON)
    with RaySampler(dist, _policy(), num_envs=1, num_workers=1) as rs:
        with pytest.raises(EnvError, match="navigation2d task"):
            rs.sample([{"goal": [0.1, 0.2]}, {"nope": 1}], None, seed=0)
