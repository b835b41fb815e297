"""The training loop: run directory, determinism, resume == uninterrupted, numeric faults, keep-K."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fastadapt.core.errors import CheckpointError, ConfigError, NumericError
from fastadapt.experiment.checkpoints import list_checkpoints
from fastadapt.experiment.runner import evaluate, read_metrics, train


def _strip(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "wall_time"} for r in records]


def test_run_directory_layout(toy_config: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(str(toy_config), out=run, quiet=True)
    assert (run / "config.yaml").is_file()
    assert (run / "summary.json").is_file()
    records = read_metrics(run / "metrics.jsonl")
    assert [r["iteration"] for r in records] == list(range(1, 13))
    assert all({"iteration", "examples", "wall_time", "loss"} <= set(r) for r in records)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["iterations"] == 12
    # keep_checkpoints=2: only the last two of 4, 8, 12 remain
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == ["ckpt-00000008", "ckpt-00000012"]
    # training reduced the loss
    assert records[-1]["loss"] < records[0]["loss"]


def test_same_seed_same_metrics_and_other_seed_differs(toy_config: Path, tmp_path: Path) -> None:
    train(str(toy_config), out=tmp_path / "a", quiet=True)
    train(str(toy_config), out=tmp_path / "b", quiet=True)
    train(str(toy_config), out=tmp_path / "c", quiet=True, seed=1)
    a = _strip(read_metrics(tmp_path / "a" / "metrics.jsonl"))
    b = _strip(read_metrics(tmp_path / "b" / "metrics.jsonl"))
    c = _strip(read_metrics(tmp_path / "c" / "metrics.jsonl"))
    assert a == b
    assert a != c


def test_resume_equals_uninterrupted(toy_config: Path, tmp_path: Path) -> None:
    full = tmp_path / "full"
    train(str(toy_config), out=full, quiet=True)
    part = tmp_path / "part"
    train(str(toy_config), ["train.iterations=6"], out=part, quiet=True)
    # simulate a crash after the checkpoint at 6: a partial record and a stale temp dir
    with open(part / "metrics.jsonl", "a") as f:
        f.write('{"iteration": 7, "loss": 0.1')
    (part / "checkpoints" / ".tmp-crashed").mkdir()
    train(str(toy_config), out=part, resume=True, quiet=True)
    assert _strip(read_metrics(part / "metrics.jsonl")) == _strip(read_metrics(full / "metrics.jsonl"))
    assert not (part / "checkpoints" / ".tmp-crashed").exists()


def test_resume_rejects_changed_config(toy_config: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(str(toy_config), ["train.iterations=4"], out=run, quiet=True)
    with pytest.raises(ConfigError, match="differs"):
        train(str(toy_config), ["algo.lr=0.01"], out=run, resume=True, quiet=True)


def test_existing_run_dir_is_not_touched(toy_config: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "keep.txt").write_text("precious")
    with pytest.raises(ConfigError, match="already exists"):
        train(str(toy_config), out=run, quiet=True)
    assert sorted(p.name for p in run.iterdir()) == ["keep.txt"]


def test_bad_config_writes_nothing(toy_config: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"^algo\.lr"):
        train(str(toy_config), ["algo.lr=-1"], out=run, quiet=True)
    assert not run.exists()


def test_numeric_fault_stops_and_keeps_last_checkpoint(tmp_path: Path, toy_config: Path) -> None:
    run = tmp_path / "run"
    with pytest.raises(NumericError, match="iteration 6") as info:
        train(str(toy_config), ["algo.fault_at=6"], out=run, quiet=True)
    assert info.value.quantity == "loss"
    records = read_metrics(run / "metrics.jsonl")
    assert records[-1]["fault"].startswith("non-finite loss at iteration 6")
    assert records[-1]["last_checkpoint"] == 4
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == ["ckpt-00000004"]
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"


def test_eval_writes_rows(toy_config: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(str(toy_config), out=run, quiet=True)
    rows = evaluate(run, ["eval.tasks=5"], json_out=tmp_path / "e.json")
    assert rows[0].n == 5
    data = json.loads((tmp_path / "e.json").read_text())
    assert {"method", "setting", "mean", "se", "n"} <= set(data["rows"][0])
    assert (run / "eval.json").is_file()
    with pytest.raises(ConfigError, match="only eval"):
        evaluate(run, ["algo.lr=1"])


def test_eval_refuses_corrupt_checkpoint_naming_file(toy_config: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(str(toy_config), out=run, quiet=True)
    latest = list_checkpoints(run / "checkpoints")[-1]
    weights = latest / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-7])
    with pytest.raises(CheckpointError, match="weights.safetensors: checksum mismatch"):
        evaluate(run)
    # the older checkpoint is untouched and still loads
    older = list_checkpoints(run / "checkpoints")[0]
    assert (older / "weights.safetensors").is_file()


def test_runs_of_an_older_version_still_load_after_a_new_default_option(toy_config: Path, tmp_path: Path) -> None:
    """A run trained before an option existed: its config.yaml lacks the key and its checkpoints carry the hash
    of that config. A newer version (which resolves the key to its default, changing the re-resolved hash) must
    still evaluate and resume it; a checkpoint of any other config is still refused."""
    import yaml

    from fastadapt.experiment.config import identity_hash

    run = tmp_path / "run"
    train(str(toy_config), ["train.iterations=8"], out=run, quiet=True)
    written = yaml.safe_load((run / "config.yaml").read_text())
    optional = [k for k in written["algo"] if k not in ("name", "lr")]
    assert optional, "the toy algo needs a defaulted option for this test"
    for k in optional:  # as written by a version without these options
        del written["algo"][k]
    (run / "config.yaml").write_text(yaml.safe_dump(written))
    old_hash = identity_hash(written)
    for ck in list_checkpoints(run / "checkpoints"):
        meta = json.loads((ck / "state.json").read_text())
        assert meta["config_hash"] != old_hash
        meta["config_hash"] = old_hash
        (ck / "state.json").write_text(json.dumps(meta))
    assert evaluate(run)[0].n == 10
    train("", ["train.iterations=12"], out=run, resume=True, quiet=True)
    assert [r["iteration"] for r in read_metrics(run / "metrics.jsonl")][-1] == 12
    latest = list_checkpoints(run / "checkpoints")[-1]
    meta = json.loads((latest / "state.json").read_text())
    meta["config_hash"] = "0123456789abcdef"
    (latest / "state.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="written for another config"):
        evaluate(run)
