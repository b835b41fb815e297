"""Property-based: mutated shipped configs (wrong types, negative or zero sizes, unknown keys, unknown names,
NaN) either validate or fail with a one-line ConfigError that names the mutated key — never another
exception; and through the CLI: exit 2, the key named, no traceback, no run directory written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastadapt.core.errors import ConfigError
from fastadapt.experiment import catalog
from fastadapt.experiment.config import find_config, read_yaml, resolve, shipped_config_names

catalog.load_all()
CONFIGS = shipped_config_names()


def _free_form(raw: dict, key: str) -> bool:
    """Is ``key`` (section.field) a free-form mapping, e.g. gymnasium make() kwargs? Its entries are not
    part of fastadapt's schema (the env checks them when it is made), so the fuzzer treats it as one value."""
    from typing import get_origin

    from fastadapt.core.registry import ALGOS, TASKS
    from fastadapt.experiment.config import DataConfig, TrainConfig

    parts = key.split(".")
    if len(parts) != 2:
        return False
    section, field = parts
    try:
        if section in ("algo", "task"):
            registry = ALGOS if section == "algo" else TASKS
            model = registry.get(raw[section]["name"]).config
        elif section == "eval":
            model = ALGOS.get(raw["algo"]["name"]).eval_config
        else:
            model = {"train": TrainConfig, "data": DataConfig}[section]
        ann = model.model_fields[field].annotation  # type: ignore[union-attr]
    except Exception:
        return False
    return ann is dict or get_origin(ann) is dict


def _leaves(node: Any, prefix: str = "", raw: dict | None = None) -> list[tuple[str, Any]]:
    raw = node if raw is None else raw
    out: list[tuple[str, Any]] = []
    if isinstance(node, dict):
        for k, v in node.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict) and v and not _free_form(raw, key):
                out += _leaves(v, key, raw)
            else:
                out.append((key, v))
    return out


def _set(raw: dict, key: str, value: Any) -> dict:
    import copy

    out = copy.deepcopy(raw)
    node = out
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return out


MUST_FAIL = ("unknown_key", "wrong_type", "nan", "unknown_name")
MUTATIONS = MUST_FAIL + ("negative", "zero")


def _mutate(raw: dict, kind: str, pick: int) -> tuple[dict, str] | None:
    leaves = [(k, v) for k, v in _leaves(raw) if k != "name"]
    if kind == "unknown_key":
        sections = [s for s in ("algo", "task", "train", "eval") if isinstance(raw.get(s), dict)]
        section = sections[pick % len(sections)]
        return _set(raw, f"{section}.zz_not_a_key", 1), f"{section}.zz_not_a_key"
    if kind == "unknown_name":
        key = ("algo.name", "task.name")[pick % 2]
        return _set(raw, key, "zz-no-such-name"), key
    numeric = [(k, v) for k, v in leaves if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if kind == "wrong_type":
        # a word where a number or flag belongs; a mapping where a list belongs (a lone string may
        # legitimately stand for a one-element list of names)
        typed = [(k, v) for k, v in leaves if isinstance(v, (int, float, bool, list, dict))]
        if not typed:
            return None
        key, v = typed[pick % len(typed)]
        return _set(raw, key, {"zz": 1} if isinstance(v, list) else "zz-not-a-value"), key
    floats = [(k, v) for k, v in numeric if isinstance(v, float)]
    if kind == "nan":
        if not floats:
            return None
        key, _ = floats[pick % len(floats)]
        return _set(raw, key, float("nan")), key
    if not numeric:
        return None
    key, v = numeric[pick % len(numeric)]
    return _set(raw, key, -abs(v) - 1 if kind == "negative" else 0 * v), key


@pytest.mark.skipif(not CONFIGS, reason="no shipped configs yet")
@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(CONFIGS or ["-"]), kind=st.sampled_from(MUTATIONS), pick=st.integers(0, 10_000))
def test_mutated_shipped_config(name: str, kind: str, pick: int) -> None:
    raw = read_yaml(find_config(name))
    mutated = _mutate(raw, kind, pick)
    if mutated is None:
        return
    cfg, key = mutated
    try:
        resolve(cfg, name)
    except ConfigError as exc:
        msg = str(exc)
        assert "\n" not in msg
        # the message starts with the mutated key (or with its section for a wrong section type)
        assert msg.startswith(key + ":") or (kind == "unknown_name" and msg.startswith(key)), (kind, key, msg)
        return
    assert kind not in MUST_FAIL, f"{name}: {kind} at {key} was accepted"


@pytest.mark.skipif(not CONFIGS, reason="no shipped configs yet")
@pytest.mark.parametrize("kind", MUST_FAIL)
def test_mutated_config_through_cli(tmp_path: Path, kind: str) -> None:
    name = CONFIGS[hash(kind) % len(CONFIGS)]
    mutated = _mutate(read_yaml(find_config(name)), kind, 3)
    if mutated is None:
        pytest.skip(f"{name} has no value for {kind}")
    cfg, key = mutated
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "fastadapt.cli", "train", str(path), "--out", str(out)],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and "Traceback" not in proc.stderr
    assert not out.exists()
