"""Out-of-range actions, fuzzed with hypothesis, for every env fastadapt registers (issue 9).

The convention (``fastadapt.tasks.rl.action_checks``):

- discrete envs (bandits, tabular MDP, gridworld, CartPole-physics) REJECT anything that is not a valid
  index (out of range, float/NaN, bool, wrong shape, wrong dtype) with an ``EnvError`` naming the env and
  the action; a valid action is exactly what ``gymnasium.spaces.Discrete.contains`` accepts (minus bool);
- continuous envs (navigation2d dense/sparse, the MuJoCo families, Meta-World) CLIP finite out-of-bounds
  actions to the ``Box`` and REJECT NaN/Inf, wrong shapes and non-numeric dtypes with an ``EnvError``;
- a rejected action leaves the env untouched; an accepted one gives exactly what the env gives for the
  (clipped) in-bounds action.

Each property is checked against a twin env that only ever sees the expected in-bounds action. Every
``fastadapt/*`` gymnasium id and every task family with a ``batched_env`` must be covered here (checked).
Hypothesis runs derandomized with bounded ``max_examples`` (the default file runs in well under a minute).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections import Counter
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastadapt.tasks
from fastadapt.core.errors import EnvError
from fastadapt.core.registry import TASKS

for _info in pkgutil.walk_packages(fastadapt.tasks.__path__, prefix="fastadapt.tasks."):
    importlib.import_module(_info.name)  # registers every env id and task family

from fastadapt.tasks.rl.bandit import BanditDistribution  # noqa: E402
from fastadapt.tasks.rl.cartpole import CartPoleTask  # noqa: E402
from fastadapt.tasks.rl.gridworld import GridTask  # noqa: E402
from fastadapt.tasks.rl.navigation2d import Nav2DTask  # noqa: E402
from fastadapt.tasks.rl.tabular_mdp import TabularMDPDistribution  # noqa: E402


def fuzz(n: int) -> settings:
    return settings(
        max_examples=n, derandomize=True, deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


INT_TORCH = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def assert_one_line_naming(exc: BaseException, *names: str) -> None:
    msg = str(exc)
    assert "\n" not in msg, msg
    for name in names:
        assert name in msg, (name, msg)


def assert_both_branches(seen: Counter[str]) -> None:
    """The fuzzer must have exercised both accepted and rejected actions, several times each."""
    assert seen["accepted"] >= 3 and seen["rejected"] >= 3, dict(seen)


def assert_same_step(out: tuple, ref: tuple) -> None:
    obs, r, te, tr, _ = out
    obs_r, r_r, te_r, tr_r, _ = ref
    if isinstance(obs, torch.Tensor):
        assert torch.equal(obs, obs_r) and torch.equal(r, r_r)
        assert torch.equal(te, te_r) and torch.equal(tr, tr_r)
    else:
        assert np.array_equal(np.asarray(obs), np.asarray(obs_r)) and r == r_r and te == te_r and tr == tr_r


# ------------------------------------------------------------------------------------ strategies
def discrete_action_values(n: int) -> st.SearchStrategy[Any]:
    ints = st.integers(-3, n + 3)
    valid = st.integers(0, n - 1)
    return st.one_of(
        valid, valid.map(np.int64), valid.map(lambda v: np.array(v, dtype=np.int32)), ints,
        st.integers(-(2**63), 2**63 - 1),
        ints.map(np.int64), ints.map(np.int32), st.integers(0, n + 3).map(np.uint8),
        ints.map(lambda v: np.array(v)),                       # 0-d integer array: valid if in range
        ints.map(lambda v: torch.tensor(v)),                   # 0-d integer tensor: valid if in range
        ints.map(lambda v: np.array([v])),                     # shape (1,): rejected
        ints.map(lambda v: np.array(v, dtype=np.float64)),     # 0-d float array: rejected
        st.booleans(), st.booleans().map(np.bool_),
        st.floats(allow_nan=True, allow_infinity=True),        # 1.0 included: rejected, never truncated
        st.floats(width=32).map(np.float32),
        ints.map(float),
        st.none(), st.text(max_size=3), st.lists(st.integers(0, n - 1), max_size=2),
    )


def expected_discrete(a: Any, n: int) -> int | None:
    """The convention: the index an action means, or None if it must be rejected."""
    if isinstance(a, (bool, np.bool_)):
        return None
    if isinstance(a, (int, np.integer)):
        v = int(a)
    elif isinstance(a, np.ndarray) and a.shape == () and a.dtype.kind in "iu":
        v = int(a)
    elif isinstance(a, torch.Tensor) and a.dim() == 0 and a.dtype in INT_TORCH:
        v = int(a)
    else:
        return None
    return v if 0 <= v < n else None


def float_values(bound: float) -> st.SearchStrategy[float]:
    return st.one_of(
        st.floats(-3 * bound, 3 * bound),                      # in and just out of bounds
        st.floats(-3 * bound, 3 * bound),
        st.floats(-1e4, 1e4),                                  # far out
        st.sampled_from([bound, -bound, 0.0]),
    )


def inject(draw: Any, base: np.ndarray) -> np.ndarray:
    """Sometimes put one special value in: NaN/Inf (rejected) or a huge finite one (clipped in float64,
    Inf once cast to float32/float16, then rejected)."""
    if base.size and draw(st.integers(0, 2)) == 0:
        special = [np.nan, np.inf, -np.inf, 1e300, -1e300, 3e38]
        base.flat[draw(st.integers(0, base.size - 1))] = draw(st.sampled_from(special))
    return base


@st.composite
def box_actions(draw: Any, shape: tuple[int, ...], bound: float) -> Any:
    """Arrays of the right or a wrong shape, float/int/bool/complex dtypes, as numpy, list or tensor,
    sometimes with one NaN/Inf or huge entry."""
    d = shape[0]
    shp = draw(st.sampled_from([shape] * 6 + [(), (d + 1,), (d - 1,), (1, d), (d, 1)]))
    base = draw(hnp.arrays(np.float64, shp, elements=float_values(bound)))
    base = inject(draw, base)
    kind = draw(st.sampled_from(["f64", "f64", "f32", "f32", "int", "bool", "complex"]))
    if kind == "f32":
        with np.errstate(over="ignore"):
            a: np.ndarray = base.astype(np.float32)
    elif kind == "int":
        a = np.clip(np.nan_to_num(base), -5, 5).astype(np.int64)
    elif kind == "bool":
        a = np.nan_to_num(base) > 0
    elif kind == "complex":
        a = base.astype(np.complex128)
    else:
        a = base
    form = draw(st.sampled_from(["numpy", "numpy", "list", "tensor"]))
    if form == "list":
        return a.tolist()
    if form == "tensor" and kind != "complex":
        return torch.from_numpy(np.ascontiguousarray(a))
    return a


def expected_box(a: Any, space: gym.spaces.Box) -> np.ndarray | None:
    """The convention: the clipped action, or None if it must be rejected."""
    arr = a.numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    if arr.dtype.kind not in "iuf" or arr.shape != space.shape:
        return None
    if not np.isfinite(arr).all():
        return None
    return np.clip(arr, space.low, space.high)


# ------------------------------------------------------------------------------------- coverage
DISCRETE_IDS = {
    "fastadapt/BernoulliBandit-v0": lambda: BanditDistribution(5, 10).sample(1, 0)[0],
    "fastadapt/GaussianBandit-v0": lambda: BanditDistribution(5, 10, "gaussian").sample(1, 0)[0],
    "fastadapt/TabularMDP-v0": lambda: TabularMDPDistribution().sample(1, 0)[0],
    "fastadapt/Gridworld-v0": lambda: GridTask((3, 4)),
    "fastadapt/CartPolePhysics-v0": lambda: CartPoleTask(0.7, 0.2, 1.3, 9.0),
}
CONTINUOUS_IDS = {"fastadapt/Navigation2D-v0": lambda: Nav2DTask((0.3, -0.2))}
MUJOCO_IDS = [
    "fastadapt/HalfCheetahVel-v0", "fastadapt/HalfCheetahDir-v0", "fastadapt/AntDir-v0", "fastadapt/AntGoal-v0",
    "fastadapt/WalkerRandParams-v0", "fastadapt/HopperRandParams-v0",
]
METAWORLD_IDS = ["fastadapt/MetaWorld-v0"]
BATCHED_DISCRETE = ["bandit", "tabular-mdp", "gridworld", "cartpole-physics"]
BATCHED_CONTINUOUS = ["navigation2d"]


def test_every_registered_env_is_covered() -> None:
    registered = {k for k in gym.registry if k.startswith("fastadapt/")}
    covered = set(DISCRETE_IDS) | set(CONTINUOUS_IDS) | set(MUJOCO_IDS) | set(METAWORLD_IDS)
    assert registered == covered, registered ^ covered
    ours = [e for e in TASKS if e.family == "metarl" and e.build.__module__.startswith("fastadapt.")]  # no plugins
    batched = {e.name for e in ours if hasattr(_build(e.name), "batched_env")}
    assert batched == set(BATCHED_DISCRETE) | set(BATCHED_CONTINUOUS), batched


def _build(name: str, **cfg: Any) -> Any:
    entry = TASKS.get(name)
    return entry.build(entry.config(**cfg))


# ----------------------------------------------------------------------------- single discrete
@pytest.mark.parametrize("env_id", sorted(DISCRETE_IDS))
def test_discrete_env_rejects_invalid_actions(env_id: str) -> None:
    env, twin = gym.make(env_id), gym.make(env_id)
    task = DISCRETE_IDS[env_id]()
    n = int(env.action_space.n)

    seen: Counter[str] = Counter()

    @fuzz(80)
    @given(a=discrete_action_values(n))
    def check(a: Any) -> None:
        env.reset(seed=3, options={"task": task})
        twin.reset(seed=3, options={"task": task})
        want = expected_discrete(a, n)
        if not isinstance(a, (bool, torch.Tensor)):  # the convention is gymnasium's Discrete.contains
            assert env.action_space.contains(a) == (want is not None), a
        seen["rejected" if want is None else "accepted"] += 1
        if want is None:
            with pytest.raises(EnvError) as err:
                env.step(a)
            assert_one_line_naming(err.value, env_id, "action")
            assert_same_step(env.step(1), twin.step(1))  # untouched by the rejected action
        else:
            assert_same_step(env.step(a), twin.step(want))

    check()
    assert_both_branches(seen)


# --------------------------------------------------------------------------- single continuous
def _check_box_env(env: Any, twin: Any, env_id: str, reset: dict[str, Any], examples: int) -> None:
    space = env.action_space
    bound = float(np.max(space.high))

    seen: Counter[str] = Counter()

    @fuzz(examples)
    @given(a=box_actions(space.shape, bound))
    def check(a: Any) -> None:
        env.reset(**reset)
        twin.reset(**reset)
        want = expected_box(a, space)
        seen["rejected" if want is None else "accepted"] += 1
        if want is None:
            with pytest.raises(EnvError) as err:
                env.step(a)
            assert_one_line_naming(err.value, env_id, "action")
            zero = np.zeros(space.shape, dtype=space.dtype)
            assert_same_step(env.step(zero), twin.step(zero))  # untouched by the rejected action
        else:
            assert space.contains(want.astype(space.dtype))
            assert_same_step(env.step(a), twin.step(want))  # same precision: MuJoCo steps in float64

    check()
    assert_both_branches(seen)


@pytest.mark.parametrize("sparse", [False, True])
def test_navigation2d_clips_finite_and_rejects_nonfinite(sparse: bool) -> None:
    env_id = "fastadapt/Navigation2D-v0"
    env, twin = gym.make(env_id, sparse=sparse), gym.make(env_id, sparse=sparse)
    _check_box_env(env, twin, env_id, {"seed": 0, "options": {"task": CONTINUOUS_IDS[env_id]()}}, 120)


@pytest.mark.mujoco
@pytest.mark.parametrize("env_id", MUJOCO_IDS)
def test_mujoco_envs_clip_finite_and_reject_nonfinite(env_id: str) -> None:
    pytest.importorskip("mujoco")
    env, twin = gym.make(env_id), gym.make(env_id)
    try:
        _check_box_env(env, twin, env_id, {"seed": 0}, 25)
    finally:
        env.close()
        twin.close()


@pytest.mark.metaworld
def test_metaworld_env_clips_finite_and_rejects_nonfinite() -> None:
    pytest.importorskip("metaworld")
    env_id = "fastadapt/MetaWorld-v0"
    env, twin = gym.make(env_id), gym.make(env_id)
    task = {"env_name": "reach-v3", "split": "train", "index": 0}
    try:
        _check_box_env(env, twin, env_id, {"seed": 0, "options": {"task": task}}, 20)
    finally:
        env.close()
        twin.close()


# ------------------------------------------------------------------------------------ batched
T, E = 3, 2


@st.composite
def batched_discrete_actions(draw: Any, n: int) -> torch.Tensor | np.ndarray:
    shp = draw(st.sampled_from([(T, E), (T, E), (T, E), (T,), (E, T), (T, E, 1), (1, E)]))
    vals = draw(hnp.arrays(np.int64, shp, elements=st.integers(-3, n + 2)))
    dtype = draw(st.sampled_from([torch.int64, torch.int64, torch.int32, torch.int8, torch.uint8,
                                  torch.float32, torch.bool, "numpy"]))
    if dtype == "numpy":
        return vals
    return torch.from_numpy(vals).to(dtype)


def expected_batched_discrete(a: Any, n: int) -> torch.Tensor | None:
    t = torch.as_tensor(a)
    if tuple(t.shape) != (T, E) or t.dtype not in INT_TORCH:
        return None
    t = t.long()
    return t if bool(((t >= 0) & (t < n)).all()) else None


@pytest.mark.parametrize("name", BATCHED_DISCRETE)
def test_batched_discrete_envs_reject_invalid_actions(name: str) -> None:
    dist = _build(name)
    env, twin = dist.batched_env(T, E), dist.batched_env(T, E)
    tasks = dist.sample(T, 0)
    env.set_tasks(tasks)
    twin.set_tasks(tasks)
    n = int(env.action_space.n)
    label = {"bandit": "bandit", "tabular-mdp": "tabular MDP", "gridworld": "gridworld",
             "cartpole-physics": "cartpole"}[name]

    seen: Counter[str] = Counter()

    @fuzz(60)
    @given(a=batched_discrete_actions(n))
    def check(a: Any) -> None:
        env.reset(seed=1)
        twin.reset(seed=1)
        want = expected_batched_discrete(a, n)
        seen["rejected" if want is None else "accepted"] += 1
        if want is None:
            with pytest.raises(EnvError) as err:
                env.step(a)
            assert_one_line_naming(err.value, label, "action")
            ones = torch.ones(T, E, dtype=torch.long)
            assert_same_step(env.step(ones), twin.step(ones))
        else:
            assert_same_step(env.step(a), twin.step(want))

    check()
    assert_both_branches(seen)


@st.composite
def batched_box_actions(draw: Any, bound: float) -> torch.Tensor | np.ndarray:
    shp = draw(st.sampled_from([(T, E, 2), (T, E, 2), (T, E, 2), (T, E), (T, E, 3), (E, T, 2), (T, E, 2, 1)]))
    base = draw(hnp.arrays(np.float64, shp, elements=float_values(bound)))
    base = inject(draw, base)
    dtype = draw(st.sampled_from([torch.float32, torch.float32, torch.float64, torch.float16, torch.int64,
                                  torch.bool, "numpy"]))
    if dtype == "numpy":
        return base
    if dtype in (torch.int64, torch.bool):
        base = np.clip(np.nan_to_num(base), -3, 3)
    with np.errstate(over="ignore"):
        return torch.from_numpy(base).to(dtype)


def expected_batched_box(a: Any, bound: float) -> torch.Tensor | None:
    t = torch.as_tensor(a)
    if tuple(t.shape) != (T, E, 2) or t.dtype == torch.bool:
        return None
    if t.dtype.is_floating_point and not bool(torch.isfinite(t).all()):
        return None
    if not t.dtype.is_floating_point:
        t = t.to(torch.float32)
    return torch.clamp(t, -bound, bound).to(torch.float32)


@pytest.mark.parametrize("sparse", [False, True])
def test_batched_navigation2d_clips_finite_and_rejects_nonfinite(sparse: bool) -> None:
    dist = _build("navigation2d", sparse=sparse)
    env, twin = dist.batched_env(T, E), dist.batched_env(T, E)
    tasks = dist.sample(T, 0)
    env.set_tasks(tasks)
    twin.set_tasks(tasks)
    bound = float(dist.cfg.max_action)

    seen: Counter[str] = Counter()

    @fuzz(100)
    @given(a=batched_box_actions(bound))
    def check(a: Any) -> None:
        env.reset(seed=1)
        twin.reset(seed=1)
        want = expected_batched_box(a, bound)
        seen["rejected" if want is None else "accepted"] += 1
        if want is None:
            with pytest.raises(EnvError) as err:
                env.step(a)
            assert_one_line_naming(err.value, "navigation2d", "action")
            zero = torch.zeros(T, E, 2)
            assert_same_step(env.step(zero), twin.step(zero))
        else:
            assert_same_step(env.step(a), twin.step(want))

    check()
    assert_both_branches(seen)


def test_rejection_messages_locate_the_action() -> None:
    """Batched rejections name the [task, env] position and the value; single ones the value."""
    nav = _build("navigation2d").batched_env(T, E)
    nav.set_tasks(_build("navigation2d").sample(T, 0))
    nav.reset(seed=0)
    a = torch.zeros(T, E, 2)
    a[2, 1, 0] = float("nan")
    with pytest.raises(EnvError, match=r"navigation2d batched env: non-finite action nan at \[task 2, env 1, dim 0\]"):
        nav.step(a)
    grid = _build("gridworld").batched_env(T, E)
    grid.set_tasks(_build("gridworld").sample(T, 0))
    grid.reset(seed=0)
    acts = torch.zeros(T, E, dtype=torch.long)
    acts[1, 0] = 9
    with pytest.raises(EnvError, match=r"gridworld batched env: action 9 at \[task 1, env 0\] out of range"):
        grid.step(acts)
    env = gym.make("fastadapt/CartPolePhysics-v0")
    env.reset(seed=0)
    with pytest.raises(EnvError, match=r"fastadapt/CartPolePhysics-v0: invalid action 1\.0 \(float\)"):
        env.step(1.0)
