"""Sinusoid regression (Finn, Abbeel & Levine 2017, "Model-Agnostic Meta-Learning", sec. 5.1).

A task is ``y = A sin(x - phi)`` with amplitude ``A ~ U[0.1, 5]`` and phase ``phi ~ U[0, pi]``; inputs
``x ~ U[-5, 5]``. A K-shot episode gives K support points and a query set of the same task.

Splits are held out through independent random streams: tasks of split ``"train"`` (meta-training),
``"val"`` (tuning) and ``"test"`` (meta-testing) are drawn from generators keyed by the split name, so the
same ``(n, seed, split)`` always yields the same tasks and different splits never share a stream. (The task
space is continuous, so "held out" means "independently drawn", as in the papers.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from pydantic import Field, model_validator

from fastadapt.core.config import Section
from fastadapt.core.errors import ConfigError
from fastadapt.core.registry import register_task
from fastadapt.core.seeding import np_rng, torch_gen
from fastadapt.core.types import FewShotEpisode

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SinusoidTask:
    """One sinusoid ``y = amplitude * sin(x - phase)``."""

    amplitude: float
    phase: float


class SinusoidConfig(Section):
    """The ``task:`` section of ``sinusoid`` configs."""

    shot: int = Field(10, ge=1, le=10_000, description="support points per task (K)")
    query: int = Field(10, ge=1, le=100_000, description="query points per task")
    amplitude: tuple[float, float] = (0.1, 5.0)
    phase: tuple[float, float] = (0.0, math.pi)
    x_range: tuple[float, float] = (-5.0, 5.0)

    @model_validator(mode="after")
    def _ranges(self) -> SinusoidConfig:
        for key in ("amplitude", "phase", "x_range"):
            lo, hi = getattr(self, key)
            if not lo < hi:
                raise ValueError(f"{key}: expected [low, high] with low < high, got [{lo}, {hi}]")
        return self


class SinusoidTasks:
    """The sinusoid task distribution (TaskDistribution protocol) and its episode sampler.

    Episodes are tensors: ``support_x, support_y: [tasks, shot, 1]``, ``query_x, query_y: [tasks, query, 1]``.
    """

    family = "fewshot"
    kind = "regression"
    in_dim = 1
    out_dim = 1

    def __init__(self, cfg: SinusoidConfig | None = None) -> None:
        self.cfg = cfg or SinusoidConfig()
        self.shot = self.cfg.shot
        self.query = self.cfg.query

    # ----------------------------------------------------------------------------------- tasks
    def sample(self, n: int, seed: int, split: str = "train") -> list[SinusoidTask]:
        """``n`` tasks of ``split`` (``train``/``val``/``test``), reproducible from ``seed``."""
        self._check_split(split)
        rng = np_rng(seed, "sinusoid-tasks", split)
        u = rng.random((n, 2))  # row i = task i, so the first m tasks do not depend on n
        (alo, ahi), (plo, phi) = self.cfg.amplitude, self.cfg.phase
        return [SinusoidTask(float(alo + (ahi - alo) * a), float(plo + (phi - plo) * p)) for a, p in u]

    def function(self, x: torch.Tensor, amplitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """``x: [tasks, points, 1]``, ``amplitude, phase: [tasks]`` -> ``y: [tasks, points, 1]``."""
        return amplitude[:, None, None] * torch.sin(x - phase[:, None, None])

    # -------------------------------------------------------------------------------- episodes
    def episodes(
        self,
        n: int,
        generator: torch.Generator,
        shot: int | None = None,
        query: int | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> tuple[FewShotEpisode, torch.Tensor, torch.Tensor]:
        """Draw ``n`` fresh tasks and their points from ``generator`` (meta-training stream).

        Returns ``(episode, amplitude [n], phase [n])``.
        """
        if n < 1:
            raise ConfigError(f"number of tasks must be >= 1, got {n}")
        lo, hi = self.cfg.amplitude
        amp = lo + (hi - lo) * torch.rand(n, generator=generator, dtype=dtype)
        lo, hi = self.cfg.phase
        ph = lo + (hi - lo) * torch.rand(n, generator=generator, dtype=dtype)
        return self._points(amp, ph, generator, shot, query, dtype), amp, ph

    def split_episodes(
        self,
        n: int,
        seed: int,
        split: str = "test",
        shot: int | None = None,
        query: int | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> tuple[FewShotEpisode, torch.Tensor, torch.Tensor]:
        """Episodes of the tasks ``sample(n, seed, split)`` with their points drawn from the same stream.

        The same ``(n, seed, split, shot, query)`` always gives the same tensors; the first ``m`` tasks are
        the same for every ``n >= m``.
        """
        tasks = self.sample(n, seed, split)
        amp = torch.tensor([t.amplitude for t in tasks], dtype=dtype)
        ph = torch.tensor([t.phase for t in tasks], dtype=dtype)
        gen = torch_gen(seed, "sinusoid-points", split)
        return self._points(amp, ph, gen, shot, query, dtype), amp, ph

    def _points(
        self,
        amp: torch.Tensor,
        ph: torch.Tensor,
        gen: torch.Generator,
        shot: int | None,
        query: int | None,
        dtype: torch.dtype,
    ) -> FewShotEpisode:
        shot = self.shot if shot is None else int(shot)
        query = self.query if query is None else int(query)
        if shot < 1 or query < 1:
            raise ConfigError(f"shot and query must be >= 1, got shot={shot}, query={query}")
        n = amp.shape[0]
        lo, hi = self.cfg.x_range
        x = lo + (hi - lo) * torch.rand(n, shot + query, 1, generator=gen, dtype=dtype)
        y = self.function(x, amp, ph)
        return FewShotEpisode(x[:, :shot], y[:, :shot], x[:, shot:], y[:, shot:])

    @staticmethod
    def _check_split(split: str) -> None:
        if split not in SPLITS:
            raise ConfigError(f"split: unknown {split!r}; allowed: {', '.join(SPLITS)}")


@register_task("sinusoid", family="fewshot", config=SinusoidConfig)
def build_sinusoid(cfg: SinusoidConfig) -> SinusoidTasks:
    """Sinusoid regression: A sin(x - phi), A ~ U[0.1,5], phi ~ U[0,pi], x ~ U[-5,5] (Finn et al. 2017)."""
    return SinusoidTasks(cfg)
