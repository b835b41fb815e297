"""Typed configs: every kind of bad input is a one-line ConfigError that starts with the dotted key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fastadapt.core.errors import ConfigError
from fastadapt.experiment import catalog
from fastadapt.experiment.config import apply_overrides, load_config, parse_value, shipped_config_names


@pytest.fixture(autouse=True)
def _catalog() -> None:
    catalog.load_all()


@pytest.mark.parametrize(
    "override, key",
    [
        ("algo.lr=-0.1", "algo.lr"),            # out of range
        ("algo.lr=abc", "algo.lr"),             # wrong type
        ("algo.lr=.nan", "algo.lr"),            # NaN
        ("algo.batch=0", "algo.batch"),         # zero size
        ("algo.bogus=1", "algo.bogus"),         # unknown key
        ("task.dim=-3", "task.dim"),
        ("train.iterations=0", "train.iterations"),
        ("train.seed=-1", "train.seed"),
        ("train.nope=1", "train.nope"),
        ("eval.tasks=0", "eval.tasks"),
        ("algo.name=no-such-algo", "algo.name"),
        ("task.name=no-such-task", "task.name"),
        ("extra_section=1", "extra_section"),
        ("data.root=/x", "data.root") ,
    ],
)
def test_bad_values_name_the_key(toy_config: Path, override: str, key: str) -> None:
    if override.startswith("data.root"):
        # toy-regression has a root field, so data.root is accepted; a wrong type is not
        override = "data.root=[1, 2]"
    with pytest.raises(ConfigError) as info:
        load_config(str(toy_config), [override])
    msg = str(info.value)
    assert msg.startswith(key + ":"), msg
    assert "\n" not in msg


def test_unknown_key_lists_allowed(toy_config: Path) -> None:
    with pytest.raises(ConfigError, match=r"algo\.bogus: unknown key; allowed: lr, batch, momentum"):
        load_config(str(toy_config), ["algo.bogus=1"])


def test_unknown_algorithm_lists_allowed(toy_config: Path) -> None:
    with pytest.raises(ConfigError, match=r"algo\.name: unknown algorithm 'x'; allowed: .*toy-sgd"):
        load_config(str(toy_config), ["algo.name=x"])


def test_family_mismatch(toy_config: Path) -> None:
    from fastadapt.core.registry import TASKS

    other = next((t.name for t in TASKS if t.family != "fewshot"), None)
    if other is None:
        pytest.skip("no non-fewshot task registered yet")
    with pytest.raises(ConfigError, match=r"^task\.name: algorithm 'toy-sgd'"):
        load_config(str(toy_config), [f"task.name={other}"])


def test_overrides_and_values(toy_config: Path) -> None:
    cfg = load_config(str(toy_config), ["algo.lr=1e-3", "train.iterations=7"], seed=3)
    assert cfg.algo.lr == pytest.approx(1e-3)  # type: ignore[attr-defined]
    assert cfg.train.iterations == 7 and cfg.train.seed == 3
    assert parse_value("[5,10]") == [5, 10] and parse_value("true") is True and parse_value("1e-3") == 1e-3
    assert apply_overrides({"a": {"b": 1}}, ["a.c.d=2"]) == {"a": {"b": 1, "c": {"d": 2}}}
    with pytest.raises(ConfigError, match="expected key=value"):
        apply_overrides({}, ["nokey"])
    with pytest.raises(ConfigError, match=r"^a\.b: is a value"):
        apply_overrides({"a": {"b": 1}}, ["a.b.c=2"])


def test_hash_ignores_iterations_but_not_hyperparameters(toy_config: Path) -> None:
    base = load_config(str(toy_config)).hash()
    assert load_config(str(toy_config), ["train.iterations=99"]).hash() == base
    assert load_config(str(toy_config), ["algo.lr=0.2"]).hash() != base
    assert load_config(str(toy_config), ["train.seed=5"]).hash() != base


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(str(tmp_path / "nope.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("algo: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(bad))
    with pytest.raises(ConfigError, match="no file or shipped config named 'no-such-config'"):
        load_config("no-such-config")


def test_every_shipped_config_validates() -> None:
    names = shipped_config_names()
    for name in names:
        cfg = load_config(name)
        assert cfg.name == name, f"config {name}.yaml has name {cfg.name!r}"
        assert yaml.safe_load(yaml.safe_dump(cfg.raw)) == cfg.raw
