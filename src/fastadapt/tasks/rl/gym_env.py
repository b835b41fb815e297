"""Any gymnasium environment as a single-task RL task (task name ``gym``, family ``rl``).

Config (the ``task:`` section)::

    task: {name: gym, env_id: CartPole-v1, max_episode_steps: null, kwargs: {}}

``env_id`` may be any registered gymnasium id, including fastadapt's own ``fastadapt/<Name>-v0`` envs (their
modules are imported on demand so that they register themselves). The builder checks the id at config time
(an unknown id is a :class:`~fastadapt.core.errors.ConfigError` naming ``task.env_id``) and returns a
:class:`GymEnvFactory` that algorithms call to make fresh env instances.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from fastadapt.core.config import Section
from fastadapt.core.errors import ConfigError
from fastadapt.core.registry import register_task


class GymConfig(Section):
    """The ``task:`` section of a single gymnasium environment."""

    env_id: str = Field(..., min_length=1, description="gymnasium environment id, e.g. CartPole-v1")
    max_episode_steps: int | None = Field(None, ge=1, description="override the env's time limit")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of gymnasium.make")


def _import_fastadapt_envs() -> None:
    """Import every module of ``fastadapt.tasks`` so that fastadapt's gymnasium ids are registered."""
    import fastadapt.tasks as pkg

    for info in pkgutil.walk_packages(pkg.__path__, prefix="fastadapt.tasks."):
        if info.name != __name__:
            importlib.import_module(info.name)


@dataclass
class GymEnvFactory:
    """Makes instances of one gymnasium env; carries its spaces (of ONE env) and id.

    ``make()`` returns a new ``gymnasium.Env`` (with the registered wrappers and time limit).
    """

    env_id: str
    max_episode_steps: int | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    observation_space: Any = None
    action_space: Any = None
    spec_max_episode_steps: int | None = None

    def make(self) -> Any:
        import gymnasium as gym

        kw = dict(self.kwargs)
        if self.max_episode_steps is not None:
            kw["max_episode_steps"] = self.max_episode_steps
        return gym.make(self.env_id, **kw)


def make_gym_factory(
    env_id: str, max_episode_steps: int | None = None, kwargs: dict[str, Any] | None = None
) -> GymEnvFactory:
    """Check ``env_id`` and build a :class:`GymEnvFactory` (ConfigError naming ``task.env_id`` if unknown)."""
    import gymnasium as gym

    if env_id.startswith("fastadapt/") and env_id not in gym.registry:
        _import_fastadapt_envs()
    if env_id not in gym.registry:
        close = [k for k in gym.registry if env_id.split("-")[0].lower() in k.lower()][:5]
        hint = f"; similar: {', '.join(close)}" if close else ""
        raise ConfigError(f"task.env_id: unknown gymnasium environment {env_id!r}{hint}")
    factory = GymEnvFactory(env_id, max_episode_steps, dict(kwargs or {}))
    try:
        env = factory.make()
    except gym.error.DependencyNotInstalled as exc:
        raise ConfigError(
            f"task.env_id: {env_id!r} needs an optional dependency ({exc}); "
            "install it with: pip install 'fastadapt[mujoco]'"
        ) from None
    except gym.error.Error as exc:
        raise ConfigError(f"task.env_id: cannot make {env_id!r}: {exc}") from None
    except TypeError as exc:
        raise ConfigError(f"task.kwargs: not accepted by {env_id!r}: {exc}") from None
    try:
        factory.observation_space = env.observation_space
        factory.action_space = env.action_space
        factory.spec_max_episode_steps = env.spec.max_episode_steps if env.spec is not None else None
    finally:
        env.close()
    return factory


@register_task("gym", family="rl", config=GymConfig)
def build_gym(cfg: GymConfig) -> GymEnvFactory:
    """A single gymnasium environment (any registered id) for single-task RL."""
    return make_gym_factory(cfg.env_id, cfg.max_episode_steps, cfg.kwargs)


__all__ = ["GymConfig", "GymEnvFactory", "build_gym", "make_gym_factory"]
