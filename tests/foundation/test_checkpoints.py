"""Checkpoint files: exact round trip without pickle, atomic writes, every kind of corruption detected."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fastadapt.core.errors import CheckpointError
from fastadapt.core.seeding import get_state, np_rng, torch_gen
from fastadapt.experiment.checkpoints import (
    flatten_state,
    list_checkpoints,
    read_checkpoint,
    save_checkpoint,
    unflatten_state,
)


def _state() -> dict:
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(torch.ones(1, 3)).sum().backward()
    opt.step()
    return {
        "net": net.state_dict(),
        "opt": opt.state_dict(),
        "np_gen": get_state(np_rng(1, "x")),
        "torch_gen": get_state(torch_gen(1, "y")),
        "array": np.arange(6, dtype=np.float32).reshape(2, 3),
        "tuple": (1, 2.5, "a"),
        "int_keys": {0: "zero", 7: [1, 2]},
        "inf": float("inf"),
        "none": None,
    }


def _equal(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


def test_flatten_round_trip_is_exact() -> None:
    state = _state()
    tensors, skeleton = flatten_state(state)
    json.dumps(skeleton)  # the skeleton is plain JSON
    assert _equal(unflatten_state(json.loads(json.dumps(skeleton)), tensors), state)


def test_save_read_keep_last(tmp_path: Path) -> None:
    state = _state()
    for it in (1, 2, 3):
        save_checkpoint(tmp_path, it, state, config_hash="h", wall_time=1.5, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt-00000002", "ckpt-00000003"]
    info, loaded = read_checkpoint(list_checkpoints(tmp_path)[-1], "h")
    assert info.iteration == 3 and info.wall_time == 1.5
    assert _equal(loaded, state)
    # optimizer state loads back into a fresh optimizer
    net = torch.nn.Linear(3, 2)
    torch.optim.Adam(net.parameters()).load_state_dict(loaded["opt"])


@pytest.mark.parametrize(
    "damage, message",
    [
        ("truncate_json", "state.json: not valid JSON"),
        ("foreign_json", "not a fastadapt checkpoint"),
        ("version", "format version 99 is not supported"),
        ("truncate_weights", "weights.safetensors: checksum mismatch"),
        ("delete_weights", "weights.safetensors: missing"),
        ("pickle_weights", "weights.safetensors: checksum mismatch"),
    ],
)
def test_damaged_checkpoints_are_refused(tmp_path: Path, damage: str, message: str) -> None:
    path = save_checkpoint(tmp_path, 1, _state(), config_hash="h", wall_time=0.0, keep=3)
    meta, weights = path / "state.json", path / "weights.safetensors"
    if damage == "truncate_json":
        meta.write_text(meta.read_text()[:40])
    elif damage == "foreign_json":
        meta.write_text(json.dumps({"hello": "world"}))
    elif damage == "version":
        data = json.loads(meta.read_text())
        data["format_version"] = 99
        meta.write_text(json.dumps(data))
    elif damage == "truncate_weights":
        weights.write_bytes(weights.read_bytes()[: len(weights.read_bytes()) // 2])
    elif damage == "delete_weights":
        weights.unlink()
    elif damage == "pickle_weights":
        import pickle  # only to build a hostile file; fastadapt never unpickles

        weights.write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path, "h")
    assert message in str(info.value) and str(path) in str(info.value)


def test_other_config_is_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, 1, {"a": torch.ones(2)}, config_hash="h1", wall_time=0.0, keep=3)
    with pytest.raises(CheckpointError, match="written for another config"):
        read_checkpoint(path, "h2")


def test_crashed_write_leaves_previous_checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save_checkpoint(tmp_path, 1, {"a": torch.ones(2)}, config_hash="h", wall_time=0.0, keep=3)
    import fastadapt.experiment.checkpoints as ck

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(ck, "save_file", boom)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path, 2, {"a": torch.ones(2)}, config_hash="h", wall_time=0.0, keep=3)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt-00000001"]
    assert not list(tmp_path.glob(".tmp-*"))
    read_checkpoint(list_checkpoints(tmp_path)[0], "h")
