"""Shared base of the few-shot classification learners, and the few-shot meta-test protocol.

Contract of :class:`FewShotLearner` (what a subclass must and may provide)
------------------------------------------------------------------------------
Construct with ``super().__init__(name, cfg, task, seed, model)`` where ``cfg`` is a
:class:`FewShotAlgoConfig` (subclass it to add your own fields), ``task`` the object built by a few-shot
task (a :class:`~fastadapt.tasks.fewshot.episodes.FewShotTasks`: use ``task.x_shape``, ``task.way`` ...)
and ``model`` the ``nn.Module`` holding *every* trainable parameter and buffer. The base creates
``self.optimizer`` (Adam over ``self.model.parameters()`` with ``cfg.lr`` / ``cfg.weight_decay``) unless you
pass ``optimizer=``; it owns the episode generator ``self.gen`` and the augmentation generator
``self.aug_gen`` (both seeded from ``seed``) and the counters ``self.iterations`` / ``self.examples``.

Required:

- ``loss(episode) -> (loss, metrics)``: the meta-training loss of a batch of episodes (a scalar tensor with
  autograd history) and float metrics (include ``"accuracy"`` on the query set in [0, 1]).
- ``predict(episode) -> scores [tasks, n_query, way]``: larger is more likely (log-probabilities preferred,
  so that ensembles can average ``softmax(scores)``). Called by :meth:`FewShotLearner.evaluate` under
  ``torch.no_grad()`` unless the subclass sets ``eval_needs_grad = True`` (gradient-based adaptation),
  with ``self.model`` in ``eval()`` mode. The support is class-major with one label per ``shot`` block.

Optional: ``eval_config_cls`` (your subclass of :class:`FewShotEvalConfig`, also passed as ``eval_config``
to ``register_algo``) and ``eval_context(ecfg, seed)`` (a context manager around every evaluation, to read
test-time options such as the number of adaptation steps). Other optional overrides: ``train_step`` (e.g. Reptile's outer update; keep the counters and return
``examples``), ``extra_state()`` / ``load_extra_state(state)`` for anything outside ``model``/optimizer/
generators (learned inner rates that are not in ``model`` must be in one of them).

What the base gives: ``train_step(iteration)`` = sample ``cfg.meta_batch`` training episodes with the task's
way/shot/query from ``self.gen`` -> optional augmentation (:func:`augment_images`) -> ``loss`` -> backward
-> optional gradient clipping -> Adam step with step-decayed learning rate; returns ``loss``, ``accuracy``,
``lr``, ``examples`` (cumulative images seen). ``state_dict``/``load_state_dict`` cover model, optimizer,
generators, counters and ``extra_state`` (tensors are cloned, so a snapshot never changes afterwards).

Evaluation (:meth:`FewShotLearner.evaluate`, config :class:`FewShotEvalConfig`): for every (way, shot) in
``ways x shots``, ``episodes`` test episodes with ``query`` queries per class from ``split``, drawn with
``torch_gen(seed, "eval", split, way, shot)``; one :class:`~fastadapt.core.types.Row` per setting with
``setting={"way": w, "shot": s}``, ``mean`` = mean per-episode query accuracy in [0, 1], ``se`` its standard
error, ``n`` = episodes and ``extra = {"ci95": [lo, hi], "ci95_halfwidth", "query", "split"}``. When
``omniglot_runs`` (a folder in the official runs format) is set, only that protocol runs: one row
``setting={"way": 20, "shot": 1, "protocol": "omniglot-runs"}`` (way = the runs' class count), ``mean`` =
accuracy over all items, ``se`` across runs, ``n`` = runs, ``extra = {"error", "ci95", "per_run", "items"}``.

Decision rule ``assignment``: ``"argmax"`` (default) labels every query by its own top score. ``"balanced"``
is *transductive*: it uses that the query set of an episode (or run) holds the same number of items of each
class (true by construction of both protocols: ``query`` per class, and one test item per class in a run)
and picks the labelling with the highest total score under that constraint (:func:`balanced_assignment`,
an optimal assignment). Rows record the rule in ``extra["assignment"]``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, field_validator
from torch import nn

from fastadapt.core.config import Section
from fastadapt.core.errors import ConfigError
from fastadapt.core.seeding import get_state, set_state, torch_gen
from fastadapt.core.types import FewShotEpisode, Row
from fastadapt.tasks.fewshot.episodes import FewShotTasks, accuracy_stats


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Temporarily use ``n`` torch intra-op threads (0: leave unchanged)."""
    if n <= 0 or n == torch.get_num_threads():
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


class FewShotAlgoConfig(Section):
    """Fields shared by the few-shot learners (the ``algo:`` section; subclass it).

    ``lr`` Adam learning rate, multiplied by ``lr_decay`` every ``lr_decay_every`` iterations (0 = never;
    Snell et al. halve it every 2000 episodes); ``meta_batch`` episodes per iteration; ``grad_clip`` max
    global gradient norm (0 = off); ``augment`` per-image augmentation of training episodes
    (:func:`augment_images`): ``"none"``, ``"shift"`` (random translation by up to ``shift`` pixels) or
    ``"affine"`` (small random rotation/scale/shear plus translation); ``within_group_prob`` the chance
    that an iteration's episodes draw all classes from one group (alphabet), like the official runs.
    """

    lr: float = Field(1e-3, gt=0)
    lr_decay: float = Field(0.5, gt=0, le=1)
    lr_decay_every: int = Field(0, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    meta_batch: int = Field(1, ge=1)
    grad_clip: float = Field(0.0, ge=0)
    augment: Literal["none", "shift", "affine"] = "none"
    shift: float = Field(2.0, ge=0)
    within_group_prob: float = Field(0.0, ge=0, le=1)


class FewShotEvalConfig(Section):
    """The ``eval:`` section of few-shot learners (see the module docstring)."""

    ways: list[int] = Field(default_factory=lambda: [5, 20], min_length=1)
    shots: list[int] = Field(default_factory=lambda: [1, 5], min_length=1)
    query: int = Field(15, ge=1)
    episodes: int = Field(600, ge=1)
    batch: int = Field(16, ge=1)
    split: Literal["test", "val", "train"] = "test"
    within_group: bool = False
    omniglot_runs: str | None = None
    assignment: Literal["argmax", "balanced"] = "argmax"

    @field_validator("ways", "shots", mode="before")
    @classmethod
    def _wrap_scalar(cls, v: object) -> object:
        return [v] if isinstance(v, (int, str)) else v


def balanced_assignment(scores: torch.Tensor) -> torch.Tensor:
    """Labels ``[tasks, n]`` maximising the summed ``scores: [tasks, n, way]`` of each task subject to every
    class receiving exactly ``n / way`` queries (a transductive decision rule for class-balanced query sets).

    Solved exactly per task as a linear assignment (Kuhn 1955; scipy's ``linear_sum_assignment``) of the
    ``n`` queries to ``n`` slots, ``n / way`` slots per class. With log-probabilities as scores this is the
    most likely labelling of the query set among the balanced ones. ``n`` must be a multiple of ``way``.
    """
    from scipy.optimize import linear_sum_assignment

    if scores.dim() != 3:
        raise ValueError(f"scores: expected [tasks, n, way], got shape {tuple(scores.shape)}")
    tasks, n, way = scores.shape
    if n % way:
        raise ConfigError(f"eval.assignment: balanced needs a multiple of way={way} queries per task, got {n}")
    per = n // way
    s = scores.detach().to(torch.float64).cpu()
    if not bool(torch.isfinite(s).all()):
        s = torch.nan_to_num(s, nan=-1e300, posinf=1e300, neginf=-1e300)
    out = torch.empty(tasks, n, dtype=torch.long)
    for t in range(tasks):
        cost = -s[t].repeat_interleave(per, dim=1).numpy()  # [n, n]: slot j belongs to class j // per
        rows, cols = linear_sum_assignment(cost)
        out[t, torch.as_tensor(rows)] = torch.as_tensor(cols // per, dtype=torch.long)
    return out.to(scores.device)


def decide(scores: torch.Tensor, rule: str = "argmax") -> torch.Tensor:
    """Predicted labels ``[tasks, n]`` from ``scores: [tasks, n, way]`` under the decision ``rule``
    (``"argmax"`` or ``"balanced"``, see :func:`balanced_assignment`)."""
    if rule == "argmax":
        return scores.argmax(-1)
    if rule == "balanced":
        return balanced_assignment(scores)
    raise ConfigError(f"eval.assignment: unknown rule {rule!r}; allowed: argmax, balanced")


def clone_tree(obj: Any) -> Any:
    """Deep copy of nested dicts/lists/tuples with tensors cloned (snapshots that never change)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: clone_tree(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(clone_tree(v) for v in obj)
    if isinstance(obj, np.ndarray):
        return obj.copy()
    return obj


def require_classification_task(task: object, algo: str) -> FewShotTasks:
    """``task`` if it is a few-shot classification task, else ConfigError naming ``algo``."""
    if not isinstance(task, FewShotTasks):
        raise ConfigError(
            f"task: {algo} needs a few-shot classification task (omniglot, digits), "
            f"got {type(task).__name__}"
        )
    return task


def label_slot_count(max_way: int | None, task: FewShotTasks) -> int:
    """Number of output label slots (``algo.max_way``, default the task's way); a clear error when too few."""
    n = max_way if max_way is not None else task.way
    if n < task.way:
        raise ConfigError(f"algo.max_way: {n} label slots cannot hold {task.way}-way training episodes")
    return n


def random_label_slots(tasks: int, max_way: int, way: int, generator: torch.Generator) -> torch.Tensor:
    """Bind each episode's ``way`` labels to distinct random slots out of ``max_way``: ``[tasks, way]`` (long).

    Used by learners with a fixed bank of output rows (MANN, Meta Networks) so that a model trained on
    ``way``-way episodes can score any number of ways up to ``max_way`` (the labels are shuffled per episode,
    as Santoro et al. 2016 do)."""
    return torch.rand(tasks, max_way, generator=generator).argsort(-1)[:, :way]


def augment_images(x: torch.Tensor, mode: str, shift: float, generator: torch.Generator) -> torch.Tensor:
    """Random per-image augmentation of ``x: [..., C, H, W]`` drawn from ``generator``.

    ``"shift"``: integer translation by up to ``shift`` pixels (zero padding); ``"affine"``: rotation up to
    10 degrees, scale in [0.9, 1.1], shear up to 0.1 and translation up to ``shift`` pixels (bilinear).
    """
    if mode == "none":
        return x
    shape = x.shape
    flat = x.reshape(-1, *shape[-3:])
    n, _, h, w = flat.shape
    u = torch.rand(n, 5, generator=generator) * 2 - 1  # [-1, 1)
    if mode == "shift":
        s = int(round(shift))
        if s == 0:
            return x
        dy = torch.round(u[:, 0] * s).to(torch.int64)
        dx = torch.round(u[:, 1] * s).to(torch.int64)
        padded = torch.nn.functional.pad(flat, (s, s, s, s))
        rows = (torch.arange(h)[None, :] + s - dy[:, None]).clamp(0, h + 2 * s - 1)  # [n, h]
        cols = (torch.arange(w)[None, :] + s - dx[:, None]).clamp(0, w + 2 * s - 1)  # [n, w]
        out = padded[torch.arange(n)[:, None, None, None], torch.arange(shape[-3])[None, :, None, None],
                     rows[:, None, :, None], cols[:, None, None, :]]
        return out.reshape(shape)
    if mode == "affine":
        ang = u[:, 0] * math.radians(10.0)
        scale = 1.0 + 0.1 * u[:, 1]
        shear = 0.1 * u[:, 2]
        tx, ty = u[:, 3] * shift * 2 / w, u[:, 4] * shift * 2 / h
        cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
        theta = torch.stack(
            [torch.stack([cos, -sin + shear, tx], 1), torch.stack([sin, cos, ty], 1)], 1
        )  # [n, 2, 3]
        grid = torch.nn.functional.affine_grid(theta, list(flat.shape), align_corners=False)
        out = torch.nn.functional.grid_sample(flat, grid, padding_mode="zeros", align_corners=False)
        return out.reshape(shape)
    raise ConfigError(f"augment: unknown mode {mode!r}; allowed: none, shift, affine")


class FewShotLearner:
    """Base of the few-shot learners; see the module docstring for the subclass contract."""

    key_metric = "accuracy"
    eval_needs_grad = False
    eval_config_cls: type[FewShotEvalConfig] = FewShotEvalConfig

    def __init__(
        self,
        name: str,
        cfg: FewShotAlgoConfig,
        task: object,
        seed: int,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> None:
        self.name = name
        self.cfg = cfg
        self.task = require_classification_task(task, name)
        self.seed = int(seed)
        self.model = model
        self.optimizer = optimizer or torch.optim.Adam(
            self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        self.gen = torch_gen(seed, "episodes", name)
        self.aug_gen = torch_gen(seed, "augment", name)
        self.iterations = 0
        self.examples = 0

    # -- subclass hooks ------------------------------------------------------------------------------
    def loss(self, episode: FewShotEpisode) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def predict(self, episode: FewShotEpisode) -> torch.Tensor:
        raise NotImplementedError

    def extra_state(self) -> dict[str, Any]:
        return {}

    def coerce_eval_config(self, cfg: Any) -> FewShotEvalConfig:
        """``cfg`` validated as this learner's eval config (``eval_config_cls``)."""
        cls = self.eval_config_cls
        if isinstance(cfg, cls):
            return cfg
        data = cfg.model_dump() if isinstance(cfg, Section) else dict(cfg or {})
        return cls.model_validate(data)

    @contextlib.contextmanager
    def eval_context(self, ecfg: FewShotEvalConfig, seed: int) -> Iterator[None]:
        """Hook around every evaluation (e.g. to read test-time options of a subclass's eval config)."""
        del ecfg, seed
        yield

    def episode_scores(self, episode: FewShotEpisode, cfg: Any = None, seed: int = 0) -> torch.Tensor:
        """Scores ``[tasks, n_query, way]`` for any episode (e.g. loaded runs) under eval config ``cfg``;
        ensembles average ``softmax`` of these over learners."""
        ecfg = self.coerce_eval_config(cfg)
        with self.eval_context(ecfg, seed):
            return self.scores(episode, ecfg.batch)

    def load_extra_state(self, state: dict[str, Any]) -> None:
        del state

    # -- training --------------------------------------------------------------------------------------
    def current_lr(self) -> float:
        if self.cfg.lr_decay_every <= 0:
            return self.cfg.lr
        return self.cfg.lr * self.cfg.lr_decay ** (self.iterations // self.cfg.lr_decay_every)

    def sample_train(self) -> FewShotEpisode:
        """``cfg.meta_batch`` training episodes of the task's shape, augmented per ``cfg.augment``."""
        within = False
        if self.cfg.within_group_prob > 0:
            within = bool(torch.rand(1, generator=self.gen) < self.cfg.within_group_prob)
        ep = self.task.sample(self.cfg.meta_batch, split="train", generator=self.gen, within_group=within)
        if self.cfg.augment != "none":
            ep = FewShotEpisode(
                augment_images(ep.support_x, self.cfg.augment, self.cfg.shift, self.aug_gen),
                ep.support_y,
                augment_images(ep.query_x, self.cfg.augment, self.cfg.shift, self.aug_gen),
                ep.query_y,
            )
        return ep

    @staticmethod
    def episode_examples(ep: FewShotEpisode) -> int:
        return int(ep.support_y.numel() + ep.query_y.numel())

    def train_step(self, iteration: int) -> dict[str, float]:
        """One meta-training iteration over ``cfg.meta_batch`` episodes (module docstring)."""
        del iteration
        self.model.train()
        lr = self.current_lr()
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        ep = self.sample_train()
        loss, metrics = self.loss(ep)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        self.iterations += 1
        self.examples += self.episode_examples(ep)
        out = {"loss": float(loss.detach()), "lr": lr, "examples": float(self.examples)}
        out.update({k: float(v) for k, v in metrics.items()})
        return out

    # -- checkpoints -----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return clone_tree({
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": {"episodes": get_state(self.gen), "augment": get_state(self.aug_gen)},
            "counters": {"iterations": self.iterations, "examples": self.examples},
            "extra": self.extra_state(),
        })

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(clone_tree(state["optimizer"]))
        set_state(self.gen, state["rng"]["episodes"])
        set_state(self.aug_gen, state["rng"]["augment"])
        self.iterations = int(state["counters"]["iterations"])
        self.examples = int(state["counters"]["examples"])
        self.load_extra_state(state.get("extra", {}))

    # -- evaluation ------------------------------------------------------------------------------------
    def scores(self, episode: FewShotEpisode, batch: int = 16) -> torch.Tensor:
        """``predict`` over ``episode`` in chunks of ``batch`` tasks, model in eval mode:
        ``[tasks, n_query, way]``."""
        was = self.model.training
        self.model.eval()
        out = []
        try:
            for i in range(0, episode.num_tasks, batch):
                sl = slice(i, i + batch)
                chunk = FewShotEpisode(
                    episode.support_x[sl], episode.support_y[sl], episode.query_x[sl], episode.query_y[sl]
                )
                if self.eval_needs_grad:
                    out.append(self.predict(chunk).detach())
                else:
                    with torch.no_grad():
                        out.append(self.predict(chunk))
        finally:
            self.model.train(was)
        return torch.cat(out)

    def evaluate(self, cfg: Section, seed: int) -> list[Row]:
        """The few-shot meta-test protocol (module docstring)."""
        ecfg = self.coerce_eval_config(cfg)
        with self.eval_context(ecfg, seed):
            if ecfg.omniglot_runs:
                return [self.evaluate_runs(ecfg.omniglot_runs, ecfg.batch, assignment=ecfg.assignment)]
            rows = []
            for way in ecfg.ways:
                for shot in ecfg.shots:
                    rows.append(self.evaluate_setting(ecfg, seed, way, shot))
            return rows

    def evaluate_setting(self, ecfg: FewShotEvalConfig, seed: int, way: int, shot: int,
                         predict: Callable[[FewShotEpisode], torch.Tensor] | None = None) -> Row:
        """One (way, shot) cell of the protocol (``predict`` defaults to :meth:`scores`)."""
        gen = torch_gen(seed, "eval", ecfg.split, way, shot)
        accs: list[np.ndarray] = []
        left = ecfg.episodes
        while left > 0:
            n = min(ecfg.batch, left)
            ep = self.task.sample(n, split=ecfg.split, generator=gen, way=way, shot=shot,
                                  query=ecfg.query, within_group=ecfg.within_group)
            s = predict(ep) if predict is not None else self.scores(ep, ecfg.batch)
            accs.append((decide(s, ecfg.assignment) == ep.query_y).to(torch.float64).mean(1).numpy())
            left -= n
        mean, se, (lo, hi) = accuracy_stats(np.concatenate(accs))
        return Row(self.name, {"way": way, "shot": shot}, mean, se, ecfg.episodes, {
            "ci95": [lo, hi], "ci95_halfwidth": 1.96 * se, "query": ecfg.query, "split": ecfg.split,
            "assignment": ecfg.assignment,
        })

    def evaluate_runs(self, folder: str, batch: int = 16,
                      predict: Callable[[FewShotEpisode], torch.Tensor] | None = None,
                      assignment: str = "argmax") -> Row:
        """Accuracy on a folder of official-format one-shot runs (module docstring)."""
        from fastadapt.tasks.fewshot.omniglot_runs import load_runs, runs_accuracy

        runs = load_runs(folder, image_size=int(self.task.x_shape[-1]),
                         crop=bool(self.task.info.get("crop", False)))
        s = predict(runs.episode) if predict is not None else self.scores(runs.episode, batch)
        pred = decide(s, assignment)
        per_run = runs_accuracy(pred, runs)
        items = int(runs.episode.query_y.numel())
        correct = float((pred == runs.episode.query_y).sum())
        _, se, _ = accuracy_stats(per_run)
        mean = correct / items
        return Row(self.name, {"way": runs.way, "shot": 1, "protocol": "omniglot-runs"}, mean, se,
                   len(runs), {
                       "error": 1.0 - mean, "ci95": [mean - 1.96 * se, mean + 1.96 * se],
                       "per_run": [float(a) for a in per_run], "items": items, "assignment": assignment,
                   })


def query_accuracy(scores: torch.Tensor, query_y: torch.Tensor) -> float:
    """Share of queries whose top score is the true class; ``scores: [tasks, n, way]``."""
    return float((scores.argmax(-1) == query_y).to(torch.float32).mean())


def class_means(z: torch.Tensor, y: torch.Tensor, way: int) -> torch.Tensor:
    """Per-class means of embeddings ``z: [tasks, n, d]`` with labels ``y: [tasks, n]`` -> ``[tasks, way, d]``."""
    onehot = torch.nn.functional.one_hot(y, way).to(z.dtype)  # [T, n, way]
    return onehot.transpose(1, 2) @ z / onehot.sum(1).clamp_min(1)[..., None]


def episode_way(episode: FewShotEpisode) -> int:
    """Number of classes of an episode (labels are 0..way-1)."""
    return int(episode.support_y.max()) + 1
