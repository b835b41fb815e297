"""Plain data types passed between layers.

Shapes are written as ``[tasks, envs, time, obs_dim]``; all tensors of one batch share the leading dims.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Row:
    """One result row (eval and bench JSON, DESIGN.md schema).

    ``setting`` identifies the cell (``{"arms": 5, "pulls": 10}``, ``{"adapt_steps": 1}``...), ``mean`` the
    value (returns are totals per task as the papers use them; accuracy in [0, 1]), ``se`` its standard
    error and ``n`` the number of tasks or trials behind it. ``extra`` holds anything else (tuned
    parameters, wall time, a CI) and is merged into the JSON object.
    """

    method: str
    setting: dict[str, Any]
    mean: float
    se: float
    n: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method,
            "setting": dict(self.setting),
            "mean": float(self.mean),
            "se": float(self.se) if self.se is not None and math.isfinite(self.se) else None,
            "n": int(self.n),
        }
        for k, v in self.extra.items():
            if k not in out:
                out[k] = v
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Row:
        extra = {k: v for k, v in obj.items() if k not in {"method", "setting", "mean", "se", "n"}}
        se = obj.get("se")
        return cls(
            method=str(obj["method"]),
            setting=dict(obj.get("setting", {})),
            mean=float(obj["mean"]),
            se=float("nan") if se is None else float(se),
            n=int(obj.get("n", 0)),
            extra=extra,
        )


@dataclass
class EpisodeBatch:
    """Trajectories of several tasks at once.

    obs: ``[tasks, envs, time, obs_dim]``; actions: ``[tasks, envs, time, act_dim]`` (or ``[..., time]`` for
    discrete actions); rewards, dones: ``[tasks, envs, time]``; ``mask`` is 1 where a step is valid (0
    after an episode ended early); ``log_probs`` the behaviour policy's log-probabilities if recorded.
    """

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    dones: torch.Tensor
    mask: torch.Tensor
    log_probs: torch.Tensor | None = None
    infos: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def num_tasks(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def num_envs(self) -> int:
        return int(self.rewards.shape[1])

    @property
    def horizon(self) -> int:
        return int(self.rewards.shape[2])

    def env_steps(self) -> int:
        return int(self.mask.sum().item())


@dataclass
class FewShotEpisode:
    """A batch of N-way K-shot classification (or regression) tasks.

    support_x: ``[tasks, way*shot, *x_shape]``; support_y: ``[tasks, way*shot]`` (class ids in 0..way-1,
    or ``[tasks, shot, y_dim]`` targets for regression); query_x/query_y likewise with the query examples.
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor

    @property
    def num_tasks(self) -> int:
        return int(self.support_x.shape[0])


def _no_track(iterable: Any, description: str = "", total: int | None = None) -> Any:
    return iterable


@dataclass
class BenchContext:
    """What a benchmark gets besides its config.

    ``out`` is the output folder (the runner writes ``results.json``, ``results.md`` and ``results.png``
    there from the returned rows); a benchmark may write extra files into it. ``references`` are published
    figures shown in the report as clearly labelled reference columns, never as results. ``notes`` are
    markdown paragraphs appended to the report (tuned parameters, what could not be computed exactly).
    ``track(iterable, description, total)`` wraps long loops with the CLI's progress bar. ``plot``, if
    set, replaces the default plot: ``plot(rows, path)``.
    """

    out: Any
    seed: int = 0
    quiet: bool = False
    references: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    track: Any = _no_track
    plot: Any = None
