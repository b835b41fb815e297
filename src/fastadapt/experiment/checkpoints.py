"""Checkpoints: safetensors weights + a JSON file, written atomically; loading never unpickles.

Layout of one checkpoint (a directory, renamed into place only when complete)::

    checkpoints/ckpt-00000100/
        weights.safetensors     every tensor of the learner's state (and numpy arrays, marked as such)
        state.json              the rest of the state tree, with references to the tensors, plus
                                format, library version, config hash, iteration, wall time and the
                                sha256 of weights.safetensors

A checkpoint is written to ``checkpoints/.tmp-*`` and renamed; a process killed mid-write leaves only a
temporary directory, which is ignored and cleaned up later. Any checkpoint that fails a check (unreadable
JSON, wrong format, other config, version, checksum, missing tensor) raises :class:`CheckpointError`
naming the file and the problem; other checkpoints are never touched.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from fastadapt import __version__
from fastadapt.core.errors import CheckpointError

FORMAT = "fastadapt-checkpoint"
FORMAT_VERSION = 1
_NAME = re.compile(r"^ckpt-(\d{8})$")


# --------------------------------------------------------------------------------- tree <-> tensors
def flatten_state(state: Any) -> tuple[dict[str, torch.Tensor], Any]:
    """Split a nested state into ``{key: tensor}`` and a JSON-able skeleton referencing the keys."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(obj: Any, path: str) -> Any:
        if isinstance(obj, torch.Tensor):
            key = path or "root"
            tensors[key] = obj.detach().cpu().contiguous().clone()
            return {"__tensor__": key}
        if isinstance(obj, np.ndarray):
            key = path or "root"
            tensors[key] = torch.from_numpy(np.ascontiguousarray(obj).copy())
            return {"__ndarray__": key}
        if isinstance(obj, dict):
            out = {}
            for k, v in obj.items():
                if not isinstance(k, (str, int)):
                    raise TypeError(f"state key {k!r} at {path or 'root'} must be str or int")
                sk = str(k)
                out[sk] = walk(v, f"{path}/{sk}" if path else sk)
            if any(isinstance(k, int) for k in obj):
                return {"__intkeys__": out}
            return out
        if isinstance(obj, tuple):
            return {"__tuple__": [walk(v, f"{path}/{i}") for i, v in enumerate(obj)]}
        if isinstance(obj, list):
            return [walk(v, f"{path}/{i}") for i, v in enumerate(obj)]
        if isinstance(obj, (np.integer,)):
            return int(obj)
        if isinstance(obj, (np.floating,)):
            return float(obj)
        if isinstance(obj, (np.bool_,)):
            return bool(obj)
        if obj is None or isinstance(obj, (bool, int, float, str)):
            if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
                return {"__float__": repr(obj)}
            return obj
        raise TypeError(f"cannot checkpoint a {type(obj).__name__} at {path or 'root'}")

    skeleton = walk(state, "")
    return tensors, skeleton


def unflatten_state(skeleton: Any, tensors: dict[str, torch.Tensor], where: str = "") -> Any:
    """Inverse of :func:`flatten_state`."""

    def walk(obj: Any) -> Any:
        if isinstance(obj, dict):
            if "__tensor__" in obj or "__ndarray__" in obj:
                key = obj.get("__tensor__", obj.get("__ndarray__"))
                if key not in tensors:
                    raise CheckpointError(f"{where}: tensor {key!r} is missing from the weights file")
                t = tensors[key]
                return t.numpy() if "__ndarray__" in obj else t
            if "__tuple__" in obj:
                return tuple(walk(v) for v in obj["__tuple__"])
            if "__float__" in obj:
                return float(obj["__float__"])
            if "__intkeys__" in obj:
                return {(int(k) if k.lstrip("-").isdigit() else k): walk(v) for k, v in obj["__intkeys__"].items()}
            return {k: walk(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        return obj

    return walk(skeleton)


# ------------------------------------------------------------------------------------------- files
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (never a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


@dataclass
class CheckpointInfo:
    path: Path
    iteration: int
    wall_time: float
    config_hash: str
    extra: dict[str, Any]


def list_checkpoints(ckpt_dir: Path) -> list[Path]:
    """Complete checkpoint directories, oldest first."""
    if not ckpt_dir.is_dir():
        return []
    found = [p for p in ckpt_dir.iterdir() if p.is_dir() and _NAME.match(p.name)]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))  # type: ignore[union-attr]


def save_checkpoint(
    ckpt_dir: Path,
    iteration: int,
    state: Any,
    *,
    config_hash: str,
    wall_time: float,
    keep: int,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write checkpoint ``iteration`` atomically and keep only the latest ``keep`` ones."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    for stale in ckpt_dir.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tensors, skeleton = flatten_state(state)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=ckpt_dir))
    try:
        weights = tmp / "weights.safetensors"
        save_file(tensors, str(weights))
        with open(weights, "rb+") as f:
            os.fsync(f.fileno())
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "library_version": __version__,
            "config_hash": config_hash,
            "iteration": int(iteration),
            "wall_time": float(wall_time),
            "weights_sha256": _sha256(weights),
            "extra": extra or {},
            "state": skeleton,
        }
        with open(tmp / "state.json", "w") as f:
            json.dump(meta, f)
            f.flush()
            os.fsync(f.fileno())
        final = ckpt_dir / f"ckpt-{iteration:08d}"
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(ckpt_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(ckpt_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def read_checkpoint(
    path: Path, config_hash: str | tuple[str, ...] | None = None
) -> tuple[CheckpointInfo, Any]:
    """Verify and load one checkpoint directory; raise CheckpointError naming the file on any problem.

    ``config_hash``: the run's config hash, or several accepted ones (see ``identity_hash``)."""
    meta_path = path / "state.json"
    weights_path = path / "weights.safetensors"
    if not meta_path.is_file():
        raise CheckpointError(f"{meta_path}: missing (not a complete fastadapt checkpoint)")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{meta_path}: not valid JSON (truncated or corrupt)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{meta_path}: not a fastadapt checkpoint (foreign file)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{meta_path}: checkpoint format version {meta.get('format_version')!r} is not supported by "
            f"fastadapt {__version__} (expects {FORMAT_VERSION})"
        )
    accepted = (config_hash,) if isinstance(config_hash, str) else config_hash
    if accepted is not None and meta.get("config_hash") not in accepted:
        raise CheckpointError(
            f"{meta_path}: written for another config (hash {meta.get('config_hash')}, this run {accepted[0]})"
        )
    if not weights_path.is_file():
        raise CheckpointError(f"{weights_path}: missing")
    if _sha256(weights_path) != meta.get("weights_sha256"):
        raise CheckpointError(f"{weights_path}: checksum mismatch (truncated or corrupt)")
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights_path}: unreadable safetensors file ({exc})") from None
    state = unflatten_state(meta.get("state"), tensors, where=str(meta_path))
    try:
        info = CheckpointInfo(
            path=path,
            iteration=int(meta["iteration"]),
            wall_time=float(meta.get("wall_time", 0.0)),
            config_hash=str(meta.get("config_hash")),
            extra=dict(meta.get("extra") or {}),
        )
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{meta_path}: missing or malformed 'iteration'") from None
    return info, state


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    found = list_checkpoints(ckpt_dir)
    return found[-1] if found else None
