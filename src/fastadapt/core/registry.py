"""Name -> implementation tables behind configs, ``fastadapt list`` and the CLI.

Modules register themselves at import time::

    @register_algo("maml", family="fewshot", config=MAMLConfig, eval_config=FewShotEvalConfig)
    def build_maml(cfg: MAMLConfig, task: object, seed: int) -> Learner: ...

    @register_task("sinusoid", family="fewshot", config=SinusoidConfig)
    def build_sinusoid(cfg: SinusoidConfig) -> SinusoidTasks: ...

    @register_benchmark("bandits", config=BanditBenchConfig)
    def run_bandits(cfg: BanditBenchConfig, ctx: BenchContext) -> list[Row]: ...

``fastadapt.experiment.catalog.load_all()`` imports every module that registers something; ``core`` itself
never imports upward.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from fastadapt.core.config import Section
from fastadapt.core.errors import ConfigError

FAMILIES = ("rl", "metarl", "fewshot", "bandit")


@dataclass(frozen=True)
class AlgoEntry:
    """An algorithm: ``build(cfg, task, seed) -> Learner``; ``family`` says which tasks it accepts."""

    name: str
    family: str
    config: type[Section]
    build: Callable[..., Any]
    eval_config: type[Section] | None = None
    doc: str = ""


@dataclass(frozen=True)
class TaskEntry:
    """A task family or environment: ``build(cfg) -> object`` (a TaskDistribution, an env factory, a dataset)."""

    name: str
    family: str
    config: type[Section]
    build: Callable[..., Any]
    doc: str = ""


@dataclass(frozen=True)
class BenchEntry:
    """A named benchmark: ``run(cfg, ctx) -> list[Row]``."""

    name: str
    config: type[Section]
    run: Callable[..., Any]
    doc: str = ""


E = TypeVar("E", AlgoEntry, TaskEntry, BenchEntry)


@dataclass
class Registry(Generic[E]):
    """A table of entries of one kind, with lookups that fail with a message listing what is allowed."""

    kind: str
    _entries: dict[str, E] = field(default_factory=dict)

    def add(self, entry: E) -> None:
        if entry.name in self._entries and self._entries[entry.name] is not entry:
            old = self._entries[entry.name]
            if getattr(old, "build", getattr(old, "run", None)) is not getattr(
                entry, "build", getattr(entry, "run", None)
            ):
                raise ValueError(f"{self.kind} {entry.name!r} registered twice")
        self._entries[entry.name] = entry

    def get(self, name: str, key: str | None = None) -> E:
        """Return the entry called ``name``; raise ConfigError naming ``key`` and the allowed names."""
        try:
            return self._entries[name]
        except KeyError:
            where = f"{key}: " if key else ""
            allowed = ", ".join(sorted(self._entries)) or "(none registered)"
            raise ConfigError(f"{where}unknown {self.kind} {name!r}; allowed: {allowed}") from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[E]:
        return iter(self._entries[n] for n in self.names())

    def __len__(self) -> int:
        return len(self._entries)


ALGOS: Registry[AlgoEntry] = Registry("algorithm")
TASKS: Registry[TaskEntry] = Registry("task")
BENCHMARKS: Registry[BenchEntry] = Registry("benchmark")


def _first_doc_line(obj: Any) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else ""


def register_algo(
    name: str,
    *,
    family: str,
    config: type[Section],
    eval_config: type[Section] | None = None,
    doc: str = "",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering an algorithm builder ``(cfg, task, seed) -> Learner``."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}")

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        ALGOS.add(AlgoEntry(name, family, config, fn, eval_config, doc or _first_doc_line(fn)))
        return fn

    return deco


def register_task(
    name: str, *, family: str, config: type[Section], doc: str = ""
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a task builder ``(cfg) -> object``."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}")

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        TASKS.add(TaskEntry(name, family, config, fn, doc or _first_doc_line(fn)))
        return fn

    return deco


def register_benchmark(
    name: str, *, config: type[Section], doc: str = ""
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a benchmark ``(cfg, ctx) -> list[Row]``."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        BENCHMARKS.add(BenchEntry(name, config, fn, doc or _first_doc_line(fn)))
        return fn

    return deco
