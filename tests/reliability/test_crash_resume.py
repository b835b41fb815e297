"""Kill -9 during `fastadapt train` (including mid-checkpoint-write), then `--resume`: the final metrics equal
an uninterrupted run with the same seed, and no complete checkpoint is ever lost or corrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

FOUNDATION = Path(__file__).parent.parent / "foundation"
sys.path.insert(0, str(FOUNDATION))
from conftest import write_toy_config  # noqa: E402


def _env(crash: str | None = None) -> dict[str, str]:
    env = {**os.environ, "FASTADAPT_PLUGINS": "toy_plugin",
           "PYTHONPATH": os.pathsep.join([str(FOUNDATION), os.environ.get("PYTHONPATH", "")])}
    env.pop("FASTADAPT_TEST_CRASH", None)
    if crash:
        env["FASTADAPT_TEST_CRASH"] = crash
    return env


def _train(cfg: Path, out: Path, *extra: str, crash: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fastadapt.cli", "train", str(cfg), "--out", str(out), "--quiet",
                           *extra], capture_output=True, text=True, env=_env(crash), timeout=300)


def _metrics(run: Path) -> list[dict]:
    out = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        rec.pop("wall_time", None)
        out.append(rec)
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    tmp = tmp_path_factory.mktemp("ref")
    cfg = write_toy_config(tmp / "toy.yaml", iterations=12, checkpoint_every=3, keep_checkpoints=2)
    proc = _train(cfg, tmp / "run")
    assert proc.returncode == 0, proc.stderr
    return cfg, _metrics(tmp / "run")


@pytest.mark.parametrize("where", ["state", "weights", "rename", "after"])
def test_sigkill_mid_checkpoint_then_resume(tmp_path: Path, reference: tuple[Path, list[dict]], where: str) -> None:
    cfg, ref = reference
    run = tmp_path / "run"
    proc = _train(cfg, run, crash=f"{where}:6")
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr)
    ckpts = sorted(p.name for p in (run / "checkpoints").glob("ckpt-*"))
    # the checkpoint at 3 is always complete; the one at 6 exists only if the rename happened
    assert ckpts == (["ckpt-00000003", "ckpt-00000006"] if where == "after" else ["ckpt-00000003"])
    proc = _train(cfg, run, "--resume")
    assert proc.returncode == 0, proc.stderr
    assert _metrics(run) == ref
    assert not list((run / "checkpoints").glob(".tmp-*"))


def test_sigkill_at_random_moments(tmp_path: Path, reference: tuple[Path, list[dict]]) -> None:
    """A real `kill -9` from outside at several wall-clock moments, resuming each time, until finished."""
    cfg, ref = reference
    slow_cfg = tmp_path / "slow.yaml"
    text = cfg.read_text().replace("lr: 0.1", "lr: 0.1\n  sleep_s: 0.05")
    slow_cfg.write_text(text)
    ref_slow = tmp_path / "ref"
    assert _train(slow_cfg, ref_slow).returncode == 0
    expected = _metrics(ref_slow)
    assert [{k: v for k, v in r.items()} for r in expected] == ref  # sleeping changes nothing but time
    run = tmp_path / "run"
    kills = 0
    for delay in (0.0, 0.13, 0.31, 0.07):
        done = len((run / "metrics.jsonl").read_text().splitlines()) if (run / "metrics.jsonl").exists() else 0
        proc = subprocess.Popen(
            [sys.executable, "-m", "fastadapt.cli", "train", str(slow_cfg), "--out", str(run), "--quiet", "--resume"],
            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:  # wait until it trains again
            if (run / "metrics.jsonl").exists() and len((run / "metrics.jsonl").read_text().splitlines()) > done:
                break
            time.sleep(0.01)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
    proc2 = _train(slow_cfg, run, "--resume")
    assert proc2.returncode == 0, proc2.stderr
    assert _metrics(run) == expected
    assert kills >= 1
