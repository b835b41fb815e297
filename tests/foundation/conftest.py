"""Fixtures of the foundation tests; the toy learner lives in toy_plugin.py (also loadable as a plugin)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
import toy_plugin  # noqa: E402,F401  (registers toy-sgd and toy-regression)

HERE = Path(__file__).parent


def write_toy_config(path: Path, **train: Any) -> Path:
    cfg = {
        "name": "toy",
        "algo": {"name": "toy-sgd", "lr": 0.1},
        "task": {"name": "toy-regression", "dim": 3},
        "train": {"iterations": 12, "seed": 0, "checkpoint_every": 4, "keep_checkpoints": 2,
                  "tensorboard": False, **train},
        "eval": {"tasks": 10},
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def toy_config(tmp_path: Path) -> Path:
    return write_toy_config(tmp_path / "toy.yaml")


