"""scikit-learn's bundled handwritten digits (``sklearn.datasets.load_digits``: 1797 images of 8x8, 10
classes, from the UCI "Optical Recognition of Handwritten Digits" set; Alpaydin & Kaynak 1998) as a second,
download-free few-shot image set.

Images are scaled from 0..16 to [0, 1] (ink 1) and bilinearly resized to ``image_size`` (16 by default, the
smallest size Conv4's four poolings accept), giving examples ``[1, image_size, image_size]``. With only ten
classes the default split meta-trains on digits 0-4 (times four rotations = 20 classes) and meta-tests
5-way on the unseen digits 5-9. scikit-learn is imported only when the task is built.
"""

from __future__ import annotations

import torch
from pydantic import Field, field_validator

from fastadapt.core.config import Section
from fastadapt.core.errors import ConfigError, DataError
from fastadapt.core.registry import register_task
from fastadapt.tasks.fewshot.episodes import ClassDataset, FewShotTasks, resize_images


class DigitsConfig(Section):
    """``task:`` section of ``digits``: episode shape, rotations (training classes only unless
    ``rotate_eval``), the digits of the test / val splits (all others train) and ``image_size``.
    ``root`` is accepted for symmetry with the other image tasks and ignored (the data ship with
    scikit-learn)."""

    root: str | None = None
    way: int = Field(5, ge=2)
    shot: int = Field(1, ge=1)
    query: int = Field(10, ge=1)
    rotations: bool = True
    rotate_eval: bool = False
    test_classes: list[int] = Field(default_factory=lambda: [5, 6, 7, 8, 9])
    val_classes: list[int] = Field(default_factory=list)
    image_size: int = Field(16, ge=8, le=64)

    @field_validator("test_classes", "val_classes", mode="before")
    @classmethod
    def _wrap_scalar(cls, v: object) -> object:
        return [v] if isinstance(v, int) else v


def load_digits_dataset(image_size: int = 16) -> ClassDataset:
    """All 1797 digits as ``x: [1797, 1, image_size, image_size]`` in [0, 1], classes ``"0"``..``"9"``."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("digits: scikit-learn is not installed (pip install scikit-learn)") from None
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0
    x = resize_images(x, image_size).clamp(0.0, 1.0)
    names = [str(i) for i in range(10)]
    return ClassDataset(x, torch.tensor(d.target, dtype=torch.int64), names, names)


@register_task("digits", family="fewshot", config=DigitsConfig)
def build_digits(cfg: DigitsConfig) -> FewShotTasks:
    """scikit-learn's 8x8 handwritten digits as N-way K-shot episodes (train 0-4, test 5-9 by default)."""
    bad = [c for c in cfg.test_classes + cfg.val_classes if not 0 <= c <= 9]
    if bad:
        raise ConfigError(f"test_classes/val_classes: digits are 0..9, got {bad[0]}")
    if set(cfg.test_classes) & set(cfg.val_classes):
        raise ConfigError("test_classes and val_classes overlap")
    ds = load_digits_dataset(cfg.image_size)
    held = set(cfg.test_classes) | set(cfg.val_classes)
    splits = {
        "train": [c for c in range(10) if c not in held],
        "val": sorted(cfg.val_classes),
        "test": sorted(cfg.test_classes),
    }
    return FewShotTasks("digits", ds, splits, cfg.way, cfg.shot, cfg.query, rotations=cfg.rotations,
                        rotate_eval=cfg.rotate_eval, info={"image_size": cfg.image_size})
