"""Tiny gymnasium envs for fast RL tests (registered under ``fastadapt-test/`` on import)."""

from __future__ import annotations

import copy
import json
from typing import Any

import gymnasium as gym
import numpy as np


class ContextBanditEnv(gym.Env):
    """Context c ~ U{-1, +1}; reward 1 iff action == (c > 0); 8 steps per episode (return in [0, 8])."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.t = 0
        self.c = 1.0

    def _obs(self) -> np.ndarray:
        return np.array([self.c], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        self.c = float(self.np_random.choice([-1.0, 1.0]))
        return self._obs(), {}

    def step(self, action: Any):
        r = 1.0 if int(action) == int(self.c > 0) else 0.0
        self.t += 1
        self.c = float(self.np_random.choice([-1.0, 1.0]))
        return self._obs(), r, self.t >= 8, False, {}


class ContinuousBanditEnv(gym.Env):
    """Context c ~ U[-1, 1]; reward -(a - c)^2; 8 steps per episode (optimal return 0, random ~ -5.3)."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.t = 0
        self.c = 0.0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        self.c = float(self.np_random.uniform(-1, 1))
        return np.array([self.c], dtype=np.float32), {}

    def step(self, action: Any):
        r = -float((float(np.asarray(action).reshape(-1)[0]) - self.c) ** 2)
        self.t += 1
        self.c = float(self.np_random.uniform(-1, 1))
        return np.array([self.c], dtype=np.float32), r, self.t >= 8, False, {}


# A small stochastic episodic MDP with a known transition table (gymnasium toy-text format).
# States 0, 1, 2 (2 is terminal-absorbing via `terminated`), actions 0, 1.
TINY_P: dict[int, dict[int, list[tuple[float, int, float, bool]]]] = {
    0: {0: [(0.8, 0, 0.0, False), (0.2, 1, 0.0, False)],
        1: [(0.5, 1, -0.1, False), (0.5, 0, -0.1, False)]},
    1: {0: [(1.0, 0, 0.5, False)],
        1: [(0.7, 2, 1.0, True), (0.3, 1, 0.0, False)]},
    2: {0: [(1.0, 2, 0.0, True)], 1: [(1.0, 2, 0.0, True)]},
}


class TinyMDPEnv(gym.Env):
    """The MDP of ``TINY_P``, starting in state 0."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Discrete(3)
        self.action_space = gym.spaces.Discrete(2)
        self.P = copy.deepcopy(TINY_P)
        self.s = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.s = 0
        return self.s, {}

    def step(self, action: Any):
        outcomes = self.P[self.s][int(action)]
        i = int(self.np_random.choice(len(outcomes), p=[o[0] for o in outcomes]))
        _, s2, r, term = outcomes[i]
        self.s = s2
        return s2, r, term, False, {}


for _name, _cls, _steps in [("ContextBandit-v0", ContextBanditEnv, None),
                            ("ContinuousBandit-v0", ContinuousBanditEnv, None),
                            ("TinyMDP-v0", TinyMDPEnv, 50)]:
    _id = f"fastadapt-test/{_name}"
    if _id not in gym.registry:
        gym.register(_id, entry_point=_cls, max_episode_steps=_steps)


def roundtrip(state: Any) -> Any:
    """Pass a learner state through the checkpoint format (tensors + JSON skeleton), as a real resume does."""
    from fastadapt.experiment.checkpoints import flatten_state, unflatten_state

    tensors, skeleton = flatten_state(state)
    skeleton = json.loads(json.dumps(skeleton))
    return unflatten_state(skeleton, {k: v.clone() for k, v in tensors.items()})


def run_steps(learner: Any, start: int, n: int) -> list[dict[str, float]]:
    return [learner.train_step(i) for i in range(start, start + n)]


def check_resume(build: Any) -> None:
    """build() -> learner. 3 steps, snapshot, 2 more == fresh learner loaded from the snapshot, 2 steps."""
    a = build()
    first = run_steps(a, 1, 3)
    snap = roundtrip(a.state_dict())
    cont = run_steps(a, 4, 2)
    b = build()
    b.load_state_dict(snap)
    resumed = run_steps(b, 4, 2)
    assert cont == resumed, (cont, resumed)
    # determinism: an independent learner with the same seed reproduces everything
    c = build()
    assert run_steps(c, 1, 5) == first + cont


import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def single_thread():
    """Small MLPs run fastest on one thread, and a shared, loaded CPU makes 2 threads ~10x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
