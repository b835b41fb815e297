"""The bench runner: result JSON (DESIGN.md schema), markdown with labelled paper columns, PNG, --run rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fastadapt.core.errors import ConfigError
from fastadapt.experiment.runner import bench, train


def test_bench_writes_json_markdown_png(tmp_path: Path) -> None:
    rows, out = bench("toy-bench", ["values=[1,2,3,4]"], out=tmp_path / "b", json_out=tmp_path / "r.json")
    data = json.loads((out / "results.json").read_text())
    assert data["rows"][0] == {"method": "mean", "setting": {"adapt_steps": 0}, "mean": 2.5,
                               "se": pytest.approx(0.6454972), "n": 4}
    assert data["config"] == {"values": [1.0, 2.0, 3.0, 4.0]} and "wall_s" in data
    md = (out / "results.md").read_text()
    assert "toy (paper)" in md and "not our results" in md and "toy note" in md
    assert (out / "results.png").stat().st_size > 1000
    assert json.loads((tmp_path / "r.json").read_text())["rows"] == data["rows"]


def test_bench_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^values: "):
        bench("toy-bench", ["values=[]"], out=tmp_path / "b")
    with pytest.raises(ConfigError, match=r"^bogus: unknown key"):
        bench("toy-bench", ["bogus=1"], out=tmp_path / "b")


def test_bench_joins_rows_of_trained_runs(toy_config: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(str(toy_config), out=run, quiet=True)
    rows, _ = bench("toy-bench", [], out=tmp_path / "b", runs=[run])
    assert [r.method for r in rows] == ["mean", "mean", "toy"]
    assert rows[-1].setting == {"adapt_steps": 0}
