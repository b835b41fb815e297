"""Configs: YAML files (shipped under ``fastadapt/configs`` or any path) -> validated pydantic sections.

A config has five sections::

    name: maml-sinusoid
    algo:  {name: maml, inner_lr: 0.01, ...}     # validated against the algorithm's registered Section
    task:  {name: sinusoid, shot: 10, ...}       # validated against the task's registered Section
    train: {iterations: 2000, seed: 0, ...}      # TrainConfig below
    eval:  {...}                                 # validated against the algorithm's eval Section
    data:  {root: null}                          # optional; copied into the task's ``root`` field

``--set a.b=value`` overrides any key (values are parsed as YAML: ``1e-3``, ``[5, 10]``, ``true``).
Every problem becomes a :class:`ConfigError` whose one-line message starts with the dotted key.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError

from fastadapt.core.config import Section
from fastadapt.core.errors import ConfigError
from fastadapt.core.registry import ALGOS, TASKS, AlgoEntry, TaskEntry

TOP_LEVEL_KEYS = ("name", "algo", "task", "train", "eval", "data")


class TrainConfig(Section):
    """How long to train and how to keep the run safe."""

    iterations: int = Field(gt=0, description="number of (meta-)training iterations")
    seed: int = Field(0, ge=0, description="the run's seed; every generator derives from it")
    checkpoint_every: int = Field(50, gt=0, description="iterations between checkpoints")
    keep_checkpoints: int = Field(3, gt=0, description="how many of the latest checkpoints to keep")
    log_every: int = Field(1, gt=0, description="iterations between log lines with --quiet")
    tensorboard: bool = Field(True, description="write TensorBoard events under tb/")
    threads: int = Field(
        1, ge=1, le=256,
        description="torch intra-op threads (1 is fastest for the small networks of meta-RL on few cores)",
    )


class DataConfig(Section):
    """Where datasets live; ``root`` is copied into the task section's ``root`` field if it has one."""

    root: str | None = None


@dataclass
class ResolvedConfig:
    """A fully validated config: the raw dict (for config.yaml) and the typed sections."""

    raw: dict[str, Any]
    name: str
    algo_entry: AlgoEntry
    task_entry: TaskEntry
    algo: Section
    task: Section
    train: TrainConfig
    eval: Section | None
    source: str

    def hash(self) -> str:
        """Hash of everything that defines the learner (not ``train.iterations``, logging or eval)."""
        return identity_hash(self.raw)


def identity_hash(raw: dict[str, Any]) -> str:
    """:meth:`ResolvedConfig.hash` of a config dict. Applied to a run's ``config.yaml`` *as written* (the
    resolved config of the library version that trained it) it reproduces the hash in that run's checkpoints
    even after a newer version added defaulted options (which change the re-resolved hash)."""
    ident = copy.deepcopy(raw)
    for k in ("iterations", "log_every", "tensorboard", "checkpoint_every", "keep_checkpoints", "threads"):
        (ident.get("train") or {}).pop(k, None)
    ident.pop("eval", None)
    ident.pop("name", None)
    blob = json.dumps(ident, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


# --------------------------------------------------------------------------------------------- files
def shipped_config_dir() -> Path:
    return Path(str(resources.files("fastadapt") / "configs"))


def shipped_config_names() -> list[str]:
    d = shipped_config_dir()
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def find_config(name_or_path: str) -> Path:
    """A path to an existing YAML file, or the shipped config of that name."""
    p = Path(name_or_path)
    if p.suffix in {".yaml", ".yml"} or p.exists():
        if not p.is_file():
            raise ConfigError(f"config: file {str(p)!r} does not exist")
        return p
    shipped = shipped_config_dir() / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    names = ", ".join(shipped_config_names()) or "(none)"
    raise ConfigError(f"config: no file or shipped config named {name_or_path!r}; shipped: {names}")


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise ConfigError(f"config: {path} is not valid YAML{where}") from None
    except OSError as exc:
        raise ConfigError(f"config: cannot read {path}: {exc.strerror}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config: {path} must hold a mapping at the top level")
    return data


# ---------------------------------------------------------------------------------------- overrides
_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def parse_value(text: str) -> Any:
    """Parse an override value as YAML, with ``1e-3`` read as a float (YAML 1.1 reads it as a string)."""
    if _INT.match(text.strip()):
        return int(text)
    if _FLOAT.match(text.strip()):
        return float(text)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _fix_floats(obj: Any) -> Any:
    if isinstance(obj, str) and _FLOAT.match(obj.strip()) and not _INT.match(obj.strip()):
        return float(obj)
    if isinstance(obj, list):
        return [_fix_floats(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _fix_floats(v) for k, v in obj.items()}
    return obj


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``a.b.c=value`` applied (intermediate dicts are created)."""
    out = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. algo.lr=0.001")
        key, _, value = item.partition("=")
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"--set {item!r}: empty key")
        parts = key.split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"{'.'.join(parts[: i + 1])}: is a value, cannot set {key}")
            node = nxt
        node[parts[-1]] = parse_value(value)
    return out


# --------------------------------------------------------------------------------------- validation
def _fmt_input(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validation_message(exc: ValidationError, model: type[BaseModel], prefix: str) -> str:
    """One line naming the first offending key and what is allowed."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    key = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = ", ".join(model.model_fields) or "(no keys)"
        return f"{key}: unknown key; allowed: {allowed}"
    if kind == "missing":
        return f"{key}: required key is missing"
    msg = err["msg"]
    if "input" in err and kind != "missing":
        value = err["input"]
        if isinstance(value, float) and not math.isfinite(value):
            msg = "must be a finite number"
        return f"{key}: {msg} (got {_fmt_input(value)})"
    return f"{key}: {msg}"


def validate_section(model: type[Section], data: Any, prefix: str) -> Section:
    """Validate ``data`` against ``model``; raise ConfigError naming ``prefix.key`` on any problem."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix}: must be a mapping of keys to values (got {_fmt_input(data)})")
    try:
        return model.model_validate(_fix_floats(data))
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, model, prefix)) from None


def _entry_name(section: Any, prefix: str) -> tuple[str, dict[str, Any]]:
    if not isinstance(section, dict):
        raise ConfigError(f"{prefix}: must be a mapping with a 'name' key (got {_fmt_input(section)})")
    body = dict(section)
    name = body.pop("name", None)
    if name is None:
        raise ConfigError(f"{prefix}.name: required key is missing")
    if not isinstance(name, str):
        raise ConfigError(f"{prefix}.name: must be a string (got {_fmt_input(name)})")
    return name, body


def resolve(raw: dict[str, Any], source: str = "<dict>") -> ResolvedConfig:
    """Validate a raw config dict completely (registries must be loaded)."""
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(f"{key}: unknown top-level key; allowed: {', '.join(TOP_LEVEL_KEYS)}")
    for key in ("algo", "task", "train"):
        if key not in raw:
            raise ConfigError(f"{key}: required section is missing")
    algo_name, algo_body = _entry_name(raw["algo"], "algo")
    task_name, task_body = _entry_name(raw["task"], "task")
    algo_entry = ALGOS.get(algo_name, key="algo.name")
    task_entry = TASKS.get(task_name, key="task.name")
    if algo_entry.family != task_entry.family:
        fitting = ", ".join(t.name for t in TASKS if t.family == algo_entry.family) or "(none)"
        raise ConfigError(
            f"task.name: algorithm {algo_name!r} ({algo_entry.family}) cannot train on task "
            f"{task_name!r} ({task_entry.family}); tasks it accepts: {fitting}"
        )
    data = validate_section(DataConfig, raw.get("data"), "data")
    assert isinstance(data, DataConfig)
    if data.root is not None:
        if "root" not in task_entry.config.model_fields:
            raise ConfigError(f"data.root: task {task_name!r} reads no data files")
        task_body = {**task_body, "root": data.root}
    algo = validate_section(algo_entry.config, algo_body, "algo")
    task = validate_section(task_entry.config, task_body, "task")
    train = validate_section(TrainConfig, raw["train"], "train")
    assert isinstance(train, TrainConfig)
    eval_raw = raw.get("eval") or {}
    if algo_entry.eval_config is None:
        if eval_raw:
            raise ConfigError(f"eval: algorithm {algo_name!r} takes no eval settings")
        eval_cfg = None
    else:
        eval_cfg = validate_section(algo_entry.eval_config, eval_raw, "eval")
    name = raw.get("name", Path(source).stem)
    if not isinstance(name, str):
        raise ConfigError(f"name: must be a string (got {_fmt_input(name)})")
    resolved_raw = {
        "name": name,
        "algo": {"name": algo_name, **algo.model_dump(mode="json")},
        "task": {"name": task_name, **task.model_dump(mode="json")},
        "train": train.model_dump(mode="json"),
        "eval": eval_cfg.model_dump(mode="json") if eval_cfg is not None else {},
        "data": data.model_dump(mode="json"),
    }
    return ResolvedConfig(resolved_raw, name, algo_entry, task_entry, algo, task, train, eval_cfg, source)


def load_config(
    name_or_path: str, overrides: list[str] | None = None, seed: int | None = None
) -> ResolvedConfig:
    """Find, read, override and validate a config (shipped name or path)."""
    path = find_config(name_or_path)
    raw = read_yaml(path)
    raw = apply_overrides(raw, list(overrides or []))
    if seed is not None:
        if seed < 0:
            raise ConfigError(f"--seed: must be >= 0 (got {seed})")
        raw.setdefault("train", {})
        if isinstance(raw["train"], dict):
            raw["train"]["seed"] = seed
    return resolve(raw, str(path))


def dump_yaml(raw: dict[str, Any]) -> str:
    return yaml.safe_dump(raw, sort_keys=False, default_flow_style=False)
