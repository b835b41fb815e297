"""The `fastadapt` command through real subprocesses: each command, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import HERE, write_toy_config

FASTADAPT = [sys.executable, "-m", "fastadapt.cli"]


def run(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FASTADAPT_PLUGINS": "toy_plugin",
           "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([*FASTADAPT, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=timeout)


def _one_line_error(proc: subprocess.CompletedProcess[str], key: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert key in lines[0], lines[0]


def test_help_and_list() -> None:
    proc = run("--help")
    assert proc.returncode == 0
    for cmd in ("quickstart", "list", "train", "eval", "bench", "plot"):
        assert cmd in proc.stdout
    proc = run("list", "algos")
    assert proc.returncode == 0 and "toy-sgd" in proc.stdout
    _one_line_error(run("list", "nonsense"), "WHAT")


def test_train_eval_plot_resume(tmp_path: Path) -> None:
    cfg = write_toy_config(tmp_path / "toy.yaml")
    run_dir = tmp_path / "run"
    proc = run("train", str(cfg), "--out", str(run_dir), "--quiet", "--set", "train.iterations=6")
    assert proc.returncode == 0, proc.stderr
    proc = run("train", str(cfg), "--out", str(run_dir), "--resume", "--quiet")
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records] == list(range(1, 13))
    proc = run("eval", str(run_dir), "--json", str(tmp_path / "e.json"), "--set", "eval.tasks=4")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "e.json").read_text())["rows"][0]["n"] == 4
    proc = run("plot", str(run_dir), "--out", str(tmp_path / "curve.png"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "curve.png").stat().st_size > 1000
    proc = run("plot", str(tmp_path / "e.json"))
    assert proc.returncode == 0 and (tmp_path / "e.png").is_file()


@pytest.mark.parametrize(
    "args, key",
    [
        (["--set", "algo.lr=-1"], "algo.lr"),
        (["--set", "algo.unknown_key=3"], "algo.unknown_key"),
        (["--set", "train.iterations=0"], "train.iterations"),
        (["--set", "algo.name=nope"], "algo.name"),
        (["--set", "task.name=nope"], "task.name"),
        (["--set", "algo.lr=nan"], "algo.lr"),
        (["badarg"], "badarg"),
    ],
)
def test_bad_config_exit_2_one_line(tmp_path: Path, args: list[str], key: str) -> None:
    cfg = write_toy_config(tmp_path / "toy.yaml")
    out = tmp_path / "run"
    _one_line_error(run("train", str(cfg), "--out", str(out), *args), key)
    assert not out.exists()


def test_missing_config_and_existing_run_dir(tmp_path: Path) -> None:
    _one_line_error(run("train", "no-such-config"), "no-such-config")
    cfg = write_toy_config(tmp_path / "toy.yaml")
    out = tmp_path / "run"
    out.mkdir()
    (out / "x").write_text("keep")
    _one_line_error(run("train", str(cfg), "--out", str(out)), "--out")
    assert [p.name for p in out.iterdir()] == ["x"]


def test_corrupt_checkpoint_exit_2_names_file(tmp_path: Path) -> None:
    cfg = write_toy_config(tmp_path / "toy.yaml")
    run_dir = tmp_path / "run"
    assert run("train", str(cfg), "--out", str(run_dir), "--quiet").returncode == 0
    ckpts = sorted((run_dir / "checkpoints").glob("ckpt-*"))
    (ckpts[-1] / "state.json").write_text("{trunc")
    proc = run("eval", str(run_dir))
    _one_line_error(proc, str(ckpts[-1] / "state.json"))
    proc = run("train", str(cfg), "--out", str(run_dir), "--resume", "--set", "train.iterations=20")
    _one_line_error(proc, "not valid JSON")


def test_numeric_fault_exit_1_names_iteration(tmp_path: Path) -> None:
    cfg = write_toy_config(tmp_path / "toy.yaml")
    proc = run("train", str(cfg), "--out", str(tmp_path / "run"), "--quiet", "--set", "algo.fault_at=5")
    assert proc.returncode == 1
    assert "non-finite loss at iteration 5" in proc.stderr and "Traceback" not in proc.stderr


def test_bench_unknown_name(tmp_path: Path) -> None:
    _one_line_error(run("bench", "no-such-bench", "--out", str(tmp_path / "b")), "no-such-bench")


def test_bench_through_cli(tmp_path: Path) -> None:
    out = tmp_path / "b"
    proc = run("bench", "toy-bench", "--set", "values=[1,2]", "values=[2,4]", "--out", str(out), "--quiet",
               "--json", str(tmp_path / "r.json"))
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert rows[0]["mean"] == 3.0 and rows[0]["n"] == 2  # the later override wins
    assert (out / "results.md").is_file() and (out / "results.png").is_file()
    _one_line_error(run("bench", "toy-bench", "values=oops", "--out", str(tmp_path / "c")), "values")
