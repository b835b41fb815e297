"""N-way K-shot episodes over any class-indexed dataset (Vinyals et al. 2016, "Matching Networks for One
Shot Learning"; Snell et al. 2017, "Prototypical Networks for Few-shot Learning").

The pieces, bottom-up:

- :class:`ClassDataset` holds every example of a labelled dataset in one tensor ``x: [items, *x_shape]``
  with ``labels: [items]`` (class ids), the class names and, per class, a *group* (the alphabet for
  Omniglot; the class itself where there are no groups).
- :func:`split_by_groups` / :func:`split_by_fraction` cut the *classes* into disjoint meta-train /
  meta-val / meta-test splits (``dict[str, list[int]]`` of class ids).
- :class:`EpisodeSampler` draws batches of episodes from one split as a
  :class:`~fastadapt.core.types.FewShotEpisode`::

      support_x: [tasks, way*shot, *x_shape]    support_y: [tasks, way*shot]   (int64 in 0..way-1)
      query_x:   [tasks, way*query, *x_shape]   query_y:   [tasks, way*query]

  Both sets are **class-major**: example ``i`` of the support belongs to class ``i // shot`` (so
  ``support_y == arange(way).repeat_interleave(shot)`` for every task), example ``j`` of the query to class
  ``j // query``. Which dataset class gets which label is random per task. Algorithms may rely on the
  class-major support order (e.g. ``support.view(way, shot, ...)``) but should read labels from
  ``support_y``; nothing may rely on the query order (the official Omniglot runs are not ordered).
  With ``rotations=True`` every class also appears rotated by 90, 180 and 270 degrees as three new
  classes (Santoro et al. 2016; the usual Omniglot augmentation), so a split of ``C`` classes offers
  ``4C`` classes.
- :class:`FewShotTasks` is what the few-shot task builders (``omniglot``, ``digits``) return and what
  few-shot algorithms receive as ``task``: a dataset, its splits and the default episode shape, with
  ``sample(n, seed=None, split="train", generator=None, way=None, shot=None, query=None)``.

Determinism: everything random comes from an explicit ``torch.Generator``; ``sample(n, seed=s)`` uses
``torch_gen(s, "episodes", split)``, so the same ``(n, seed, split, shape)`` always gives identical tensors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from fastadapt.core.errors import ConfigError, DataError
from fastadapt.core.seeding import np_rng, torch_gen
from fastadapt.core.types import FewShotEpisode

SPLITS = ("train", "val", "test")


@dataclass
class ClassDataset:
    """Every example of a class-labelled dataset, in memory.

    Attributes:
        x: ``[items, *x_shape]`` float32 examples (images are ``[items, channels, height, width]``).
        labels: ``[items]`` int64 class ids in ``0..len(class_names)-1``.
        class_names: one name per class (e.g. ``"Greek/character01"``).
        groups: one group name per class (e.g. the alphabet ``"Greek"``); splits by group keep all classes
            of a group together, and ``within_group`` episodes draw all classes from one group.
    """

    x: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    groups: list[str]
    _index: list[torch.Tensor] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.labels.shape[0]:
            raise DataError(
                f"dataset: {self.x.shape[0]} examples but {self.labels.shape[0]} labels"
            )
        if len(self.groups) != len(self.class_names):
            raise DataError(
                f"dataset: {len(self.class_names)} classes but {len(self.groups)} group names"
            )
        self.labels = self.labels.to(torch.int64)
        order = torch.argsort(self.labels, stable=True)
        counts = torch.bincount(self.labels, minlength=len(self.class_names)).tolist()
        self._index = list(torch.split(order, counts))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def x_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def items_of(self, c: int) -> torch.Tensor:
        """Indices into ``x`` of the examples of class ``c``: ``[count_c]`` int64, ascending."""
        return self._index[c]

    def count(self, c: int) -> int:
        return int(self._index[c].numel())

    def group_names(self) -> list[str]:
        """The distinct group names in first-appearance order."""
        return list(dict.fromkeys(self.groups))

    def classes_of_groups(self, names: Sequence[str]) -> list[int]:
        wanted = set(names)
        return [c for c, g in enumerate(self.groups) if g in wanted]


def _check_groups(dataset: ClassDataset, names: Sequence[str], key: str) -> None:
    known = set(dataset.groups)
    for n in names:
        if n not in known:
            allowed = ", ".join(dataset.group_names())
            raise ConfigError(f"{key}: unknown group {n!r}; this dataset has: {allowed}")


def split_by_groups(
    dataset: ClassDataset, test: Sequence[str], val: Sequence[str] = ()
) -> dict[str, list[int]]:
    """Disjoint class splits keeping whole groups (alphabets) together.

    ``test`` and ``val`` name groups; every other group goes to ``"train"``. Returns
    ``{"train": [...], "val": [...], "test": [...]}`` lists of class ids (ascending).
    """
    _check_groups(dataset, test, "test groups")
    _check_groups(dataset, val, "val groups")
    both = set(test) & set(val)
    if both:
        raise ConfigError(f"groups {sorted(both)} are in both the val and the test split")
    out: dict[str, list[int]] = {s: [] for s in SPLITS}
    tset, vset = set(test), set(val)
    for c, g in enumerate(dataset.groups):
        out["test" if g in tset else "val" if g in vset else "train"].append(c)
    return out


def split_by_fraction(
    dataset: ClassDataset,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    by: str = "group",
) -> dict[str, list[int]]:
    """Disjoint class splits drawn at random (seeded) by group or by single class.

    ``by="group"`` moves ``round(fraction * groups)`` whole groups into val/test (at least one when the
    fraction is > 0); ``by="class"`` does the same with single classes. Same seed => same split.
    """
    if by not in ("group", "class"):
        raise ConfigError(f"split: by must be 'group' or 'class', got {by!r}")
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise ConfigError(
            f"split fractions: need val >= 0, test >= 0 and val + test < 1, got {val_fraction}, "
            f"{test_fraction}"
        )
    units: list[str] | list[int] = dataset.group_names() if by == "group" else list(
        range(dataset.num_classes)
    )
    n = len(units)

    def count(f: float) -> int:
        return 0 if f == 0 else max(1, int(round(f * n)))

    n_test, n_val = count(test_fraction), count(val_fraction)
    if n_test + n_val >= n:
        raise ConfigError(
            f"split: {n} {by}s cannot give {n_test} test + {n_val} val and keep some for training"
        )
    perm = np_rng(seed, "class-split", by).permutation(n)
    test_u = {units[i] for i in perm[:n_test]}
    val_u = {units[i] for i in perm[n_test : n_test + n_val]}
    out: dict[str, list[int]] = {s: [] for s in SPLITS}
    for c in range(dataset.num_classes):
        u = dataset.groups[c] if by == "group" else c
        out["test" if u in test_u else "val" if u in val_u else "train"].append(c)
    return out


class EpisodeSampler:
    """Draws N-way K-shot episodes from a fixed pool of classes.

    Args:
        dataset: the examples.
        classes: class ids this sampler may use (one split).
        way, shot, query: classes per episode, support and query examples per class.
        rotations: if True, each class also appears rotated by 90/180/270 degrees as a new class
            (needs image-shaped examples ``[..., H, W]`` with H == W).
        within_group: if True, all classes of an episode come from one group (e.g. one alphabet,
            as in the official Omniglot one-shot runs); groups with fewer than ``way`` classes are skipped.

    ``sample(num_tasks, generator)`` returns a :class:`FewShotEpisode` with ``support_x:
    [num_tasks, way*shot, *x_shape]``, ``query_x: [num_tasks, way*query, *x_shape]`` and class-major int64
    labels (see the module docstring).
    """

    def __init__(
        self,
        dataset: ClassDataset,
        classes: Sequence[int],
        way: int,
        shot: int,
        query: int,
        rotations: bool = False,
        within_group: bool = False,
    ) -> None:
        if way < 1 or shot < 1 or query < 0:
            raise ConfigError(f"episode shape: need way >= 1, shot >= 1, query >= 0; got {way}, {shot}, {query}")
        self.dataset = dataset
        self.classes = [int(c) for c in classes]
        self.way, self.shot, self.query = int(way), int(shot), int(query)
        self.rotations = bool(rotations)
        self.within_group = bool(within_group)
        if rotations and (len(dataset.x_shape) < 2 or dataset.x_shape[-1] != dataset.x_shape[-2]):
            raise ConfigError(f"rotations: need square images, got examples of shape {dataset.x_shape}")
        need = self.shot + self.query
        short = [c for c in self.classes if dataset.count(c) < need]
        if short:
            c0 = short[0]
            raise ConfigError(
                f"episode shape: shot + query = {need} but class {dataset.class_names[c0]!r} has only "
                f"{dataset.count(c0)} examples ({len(short)} classes too small)"
            )
        n_rot = 4 if self.rotations else 1
        if self.within_group:
            by_group: dict[str, list[int]] = {}
            for c in self.classes:
                by_group.setdefault(dataset.groups[c], []).append(c)
            self._groups = [cs for cs in by_group.values() if len(cs) * n_rot >= self.way]
            if not self._groups:
                raise ConfigError(
                    f"within_group episodes: no group has {self.way} classes (way) in this split"
                )
        elif len(self.classes) * n_rot < self.way:
            raise ConfigError(
                f"way: {self.way}-way episodes need {self.way} classes but the split has "
                f"{len(self.classes) * n_rot}" + (" (with rotations)" if self.rotations else "")
            )

    @property
    def num_classes(self) -> int:
        """Classes available, counting rotated copies as classes."""
        return len(self.classes) * (4 if self.rotations else 1)

    def _draw_classes(self, generator: torch.Generator) -> tuple[list[int], list[int]]:
        pool = self.classes
        if self.within_group:
            g = int(torch.randint(len(self._groups), (1,), generator=generator))
            pool = self._groups[g]
        n_rot = 4 if self.rotations else 1
        pick = torch.randperm(len(pool) * n_rot, generator=generator)[: self.way].tolist()
        return [pool[p // n_rot] for p in pick], [p % n_rot for p in pick]

    def sample(self, num_tasks: int, generator: torch.Generator) -> FewShotEpisode:
        """``num_tasks`` episodes drawn with ``generator`` (shapes in the class docstring)."""
        if num_tasks < 1:
            raise ConfigError(f"num_tasks must be >= 1, got {num_tasks}")
        per = self.shot + self.query
        idx = torch.empty(num_tasks, self.way, per, dtype=torch.int64)
        rot = torch.zeros(num_tasks, self.way, dtype=torch.int64)
        for t in range(num_tasks):
            cls, rots = self._draw_classes(generator)
            rot[t] = torch.tensor(rots, dtype=torch.int64)
            for w, c in enumerate(cls):
                items = self.dataset.items_of(c)
                idx[t, w] = items[torch.randperm(items.numel(), generator=generator)[:per]]
        x = self.dataset.x[idx]  # [tasks, way, shot+query, *x_shape]
        if self.rotations:
            for k in (1, 2, 3):
                sel = rot == k
                if bool(sel.any()):
                    x[sel] = torch.rot90(x[sel], k, dims=(-2, -1))
        xs = self.dataset.x_shape
        labels = torch.arange(self.way, dtype=torch.int64)
        support_x = x[:, :, : self.shot].reshape(num_tasks, self.way * self.shot, *xs)
        query_x = x[:, :, self.shot :].reshape(num_tasks, self.way * self.query, *xs)
        support_y = labels.repeat_interleave(self.shot).expand(num_tasks, -1).contiguous()
        query_y = labels.repeat_interleave(self.query).expand(num_tasks, -1).contiguous()
        return FewShotEpisode(support_x, support_y, query_x, query_y)


class FewShotTasks:
    """A few-shot classification task family: dataset + class splits + default episode shape.

    This is the object the ``omniglot`` and ``digits`` task builders return and few-shot algorithms
    receive as ``task``. Attributes: ``name``, ``dataset`` (:class:`ClassDataset`), ``splits``
    (``{"train"|"val"|"test": [class ids]}``, disjoint), ``way``/``shot``/``query`` (the meta-training
    episode shape), ``rotations`` (rotated copies as extra classes; applied to the ``"train"`` split only
    unless ``rotate_eval`` is set), ``x_shape`` (one example's shape, e.g. ``(1, 28, 28)``).

    ``sample(n, seed=None, split="train", generator=None, way=None, shot=None, query=None,
    within_group=False)`` returns a :class:`FewShotEpisode` of ``n`` tasks; pass either ``seed`` (fresh
    generator ``torch_gen(seed, "episodes", split)``) or a persistent ``generator`` (training loops).
    """

    def __init__(
        self,
        name: str,
        dataset: ClassDataset,
        splits: dict[str, list[int]],
        way: int,
        shot: int,
        query: int,
        rotations: bool = False,
        rotate_eval: bool = False,
        info: dict[str, object] | None = None,
    ) -> None:
        self.name = name
        self.dataset = dataset
        self.splits = {s: list(splits.get(s, [])) for s in SPLITS}
        seen: set[int] = set()
        for s in SPLITS:
            dup = seen & set(self.splits[s])
            if dup:
                raise ConfigError(f"class splits overlap: class {min(dup)} is in more than one split")
            seen |= set(self.splits[s])
        self.way, self.shot, self.query = int(way), int(shot), int(query)
        self.rotations = bool(rotations)
        self.rotate_eval = bool(rotate_eval)
        self.info = dict(info or {})
        self._samplers: dict[tuple[object, ...], EpisodeSampler] = {}

    @property
    def x_shape(self) -> tuple[int, ...]:
        return self.dataset.x_shape

    def classes(self, split: str) -> list[int]:
        if split not in SPLITS:
            raise ConfigError(f"split: unknown {split!r}; allowed: {', '.join(SPLITS)}")
        return self.splits[split]

    def uses_rotations(self, split: str) -> bool:
        return self.rotations and (split == "train" or self.rotate_eval)

    def sampler(
        self,
        split: str = "train",
        way: int | None = None,
        shot: int | None = None,
        query: int | None = None,
        within_group: bool = False,
    ) -> EpisodeSampler:
        """The (cached) :class:`EpisodeSampler` for ``split`` and the given (or default) episode shape."""
        way = self.way if way is None else way
        shot = self.shot if shot is None else shot
        query = self.query if query is None else query
        key = (split, way, shot, query, within_group)
        if key not in self._samplers:
            classes = self.classes(split)
            if not classes:
                raise ConfigError(f"split {split!r} of task {self.name!r} has no classes")
            try:
                self._samplers[key] = EpisodeSampler(
                    self.dataset, classes, way, shot, query, self.uses_rotations(split), within_group
                )
            except ConfigError as e:
                raise ConfigError(f"{self.name} split {split!r}: {e}") from None
        return self._samplers[key]

    def sample(
        self,
        n: int,
        seed: int | None = None,
        split: str = "train",
        *,
        generator: torch.Generator | None = None,
        way: int | None = None,
        shot: int | None = None,
        query: int | None = None,
        within_group: bool = False,
    ) -> FewShotEpisode:
        """``n`` episodes of ``split`` (shapes in the module docstring)."""
        if generator is None:
            if seed is None:
                raise ConfigError("sample: pass a seed or a generator")
            generator = torch_gen(seed, "episodes", split)
        return self.sampler(split, way, shot, query, within_group).sample(n, generator)

    def describe(self) -> dict[str, object]:
        """A JSON-able summary (class counts per split, episode shape)."""
        return {
            "name": self.name,
            "x_shape": list(self.x_shape),
            "classes": {s: len(v) for s, v in self.splits.items()},
            "groups": {
                s: sorted({self.dataset.groups[c] for c in v}) for s, v in self.splits.items()
            },
            "way": self.way,
            "shot": self.shot,
            "query": self.query,
            "rotations": self.rotations,
            **self.info,
        }


def resize_images(x: torch.Tensor, size: int) -> torch.Tensor:
    """Area-average resize of ``x: [n, channels, H, W]`` to ``[n, channels, size, size]`` (float32)."""
    x = x.to(torch.float32)
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    if size <= min(x.shape[-2:]):
        return torch.nn.functional.adaptive_avg_pool2d(x, (size, size))
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def accuracy_stats(correct_per_task: np.ndarray) -> tuple[float, float, tuple[float, float]]:
    """Mean, standard error and 95% normal interval of per-task accuracies ``[tasks]``."""
    a = np.asarray(correct_per_task, dtype=np.float64)
    n = a.size
    mean = float(a.mean()) if n else float("nan")
    se = float(a.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    half = 1.96 * se if n > 1 else float("nan")
    return mean, se, (mean - half, mean + half)
