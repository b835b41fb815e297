"""Env faults injected through the samplers into a running ``fastadapt train`` (issue 9).

An env of the plugin task ``faulty-nav`` (``faulty_env_plugin.py``, loaded with FASTADAPT_PLUGINS) starts
returning NaN/Inf observations or rewards, raising, or returning wrong shapes after N steps, at one chosen
``[task, env]`` position. Through the real CLI (subprocesses), with the vector and the process sampler:

- a NaN observation/reward stops training with exit code 1 and ONE line naming the iteration, the quantity,
  the task and env index; metrics.jsonl gets a ``fault`` record; the last good checkpoint is kept and
  ``--resume`` (fault gone) finishes with metrics equal to an uninterrupted run;
- an env that raises (process sampler) stops training with one line naming the task, env and iteration; no
  metrics of the faulted iteration are written (no partial batch reached an update), a ``fault`` record is,
  and the last checkpoint is kept.

The in-process tests below check the samplers' own reports (quantity, task, env, step) for every kind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from fastadapt.core.errors import EnvError, NumericError
from fastadapt.nn.policies import GaussianMLPPolicy
from fastadapt.samplers.process import ProcessSampler
from fastadapt.samplers.vector import EnvOutputError, VectorSampler

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import faulty_env_plugin  # noqa: E402  (registers faulty-nav)
from faulty_env_plugin import FAULT_VAR, FaultyNav, FaultyNavConfig  # noqa: E402

# Reptile-RL with inner_steps=1 samples twice per iteration; horizon 10 => 20 steps per env per iteration,
# so a fault "after 50 steps" fires in iteration 3 (its second sampling round), after the checkpoint at 2.
AFTER, FAULT_ITER, TASK, ENV = 50, 3, 1, 2


def write_config(path: Path, sampler: str) -> Path:
    cfg = {
        "name": f"faulty-{sampler}",
        "algo": {"name": "reptile-rl", "hidden": [8], "meta_batch": 2, "fast_batch": 3, "inner_steps": 1,
                 "num_workers": 2},
        "task": {"name": "faulty-nav", "sampler": sampler, "horizon": 10},
        "train": {"iterations": 4, "seed": 0, "checkpoint_every": 2, "keep_checkpoints": 3, "tensorboard": False},
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def train(cfg: Path, out: Path, *extra: str, fault: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FASTADAPT_PLUGINS": "faulty_env_plugin",
           "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    env.pop(FAULT_VAR, None)
    if fault:
        env[FAULT_VAR] = fault
    return subprocess.run([sys.executable, "-m", "fastadapt.cli", "train", str(cfg), "--out", str(out), "--quiet",
                           *extra], capture_output=True, text=True, env=env, timeout=300)


def records(run: Path) -> list[dict[str, Any]]:
    out = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        rec.pop("wall_time", None)
        out.append(rec)
    return out


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The CLI's one error line (progress lines of --quiet start with '[train')."""
    assert proc.returncode not in (0, 2), (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("[train")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def checkpoints(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").glob("ckpt-*"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list[dict[str, Any]]]]:
    """Uninterrupted runs without a fault, one per sampler."""
    tmp = tmp_path_factory.mktemp("ref")
    out = {}
    for sampler in ("vector", "process"):
        cfg = write_config(tmp / f"{sampler}.yaml", sampler)
        proc = train(cfg, tmp / sampler)
        assert proc.returncode == 0, proc.stderr
        out[sampler] = (cfg, records(tmp / sampler))
    return out


# ----------------------------------------------------------------------------- through the CLI
@pytest.mark.parametrize("sampler, kind, quantity", [("vector", "nan_obs", "observation"),
                                                     ("process", "nan_reward", "reward")])
def test_nonfinite_env_output_stops_train_then_resume(
    tmp_path: Path, reference: dict[str, Any], sampler: str, kind: str, quantity: str
) -> None:
    cfg, ref = reference[sampler]
    run = tmp_path / "run"
    proc = train(cfg, run, fault=f"{kind}:{AFTER}:{TASK}:{ENV}")
    line = error_line(proc)
    assert proc.returncode == 1
    for part in (f"non-finite {quantity}", f"task {TASK} env {ENV}", f"iteration {FAULT_ITER}",
                 "last good checkpoint is iteration 2"):
        assert part in line, (part, line)
    recs = records(run)
    assert recs[:-1] == ref[: FAULT_ITER - 1]  # the good iterations, nothing of the faulted one
    fault = recs[-1]
    assert fault["iteration"] == FAULT_ITER and fault["last_checkpoint"] == 2
    assert fault["quantity"].startswith(quantity) and f"task {TASK} env {ENV}" in fault["fault"]
    assert checkpoints(run) == ["ckpt-00000002"]
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"
    # the env is fixed (no fault): --resume continues from the last good checkpoint, as if nothing happened
    proc = train(cfg, run, "--resume")
    assert proc.returncode == 0, proc.stderr
    assert records(run) == ref


def test_env_raising_in_process_sampler_stops_train(tmp_path: Path, reference: dict[str, Any]) -> None:
    """(A wrong shape takes the same EnvError path; it is checked in-process below.)"""
    cfg, ref = reference["process"]
    run = tmp_path / "run"
    proc = train(cfg, run, fault=f"raise:{AFTER}:{TASK}:{ENV}")
    line = error_line(proc)
    assert f"task {TASK} env {ENV}: step 0 failed: RuntimeError: simulated simulator crash" in line, line
    # only complete iterations were recorded: the faulted one never produced an update
    assert [r for r in records(run) if "fault" not in r] == ref[: FAULT_ITER - 1]
    assert checkpoints(run) == ["ckpt-00000002"]
    # the runner records the fault like a numeric one: iteration, what, last good checkpoint
    fault = records(run)[-1]
    assert fault["iteration"] == FAULT_ITER and fault["quantity"] == "env" and fault["last_checkpoint"] == 2
    assert f"task {TASK} env {ENV}" in fault["fault"] and f"at iteration {FAULT_ITER}" in line
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"


# ------------------------------------------------------------------------------- in-process
def _dist(sampler: str) -> FaultyNav:
    return FaultyNav(FaultyNavConfig(sampler=sampler, horizon=10))


def _policy() -> GaussianMLPPolicy:
    return GaussianMLPPolicy(2, 2, hidden=(8,), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("kind, quantity, step", [("nan_obs", "observation", 4), ("inf_obs", "observation", 4),
                                                  ("nan_reward", "reward", 4)])
def test_vector_sampler_names_quantity_task_env_step(
    monkeypatch: pytest.MonkeyPatch, kind: str, quantity: str, step: int
) -> None:
    monkeypatch.setenv(FAULT_VAR, f"{kind}:{step}:{TASK}:{ENV}")
    dist = _dist("vector")
    sampler = VectorSampler(dist, _policy(), num_envs=3)
    with pytest.raises(EnvOutputError) as err:
        sampler.sample(dist.sample(2, 0), seed=0)
    exc = err.value
    assert isinstance(exc, NumericError) and isinstance(exc, EnvError)
    assert (exc.kind, exc.task_index, exc.env_index, exc.step) == (quantity, TASK, ENV, step)
    msg = str(exc)
    assert msg.startswith(f"non-finite {quantity} of task {TASK} env {ENV} (episode step {step}, task ")
    assert "\n" not in msg


def test_vector_sampler_rejects_wrong_shapes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAULT_VAR, f"wrong_shape:2:{TASK}:{ENV}")
    dist = _dist("vector")
    with pytest.raises(EnvError, match=r"FaultyBatchedNav: step 2 returned obs \[2, 3, 3\].*expected obs \[2, 3, 2\]"):
        VectorSampler(dist, _policy(), num_envs=3).sample(dist.sample(2, 0), seed=0)


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("kind, quantity", [("nan_obs", "observation"), ("inf_obs", "observation"),
                                            ("nan_reward", "reward")])
def test_process_sampler_names_quantity_task_env_step(
    monkeypatch: pytest.MonkeyPatch, workers: int, kind: str, quantity: str
) -> None:
    monkeypatch.setenv(FAULT_VAR, f"{kind}:4:{TASK}:{ENV}")
    faulty_env_plugin._instances.clear()
    dist = _dist("process")
    with ProcessSampler(dist, _policy(), num_envs=3, num_workers=workers) as sampler:
        with pytest.raises(EnvOutputError) as err:
            sampler.sample(dist.sample(2, 0), seed=0)
    exc = err.value
    assert isinstance(exc, NumericError) and isinstance(exc, EnvError)
    assert (exc.kind, exc.task_index, exc.env_index, exc.step) == (quantity, TASK, ENV, 4)
    assert f"non-finite {quantity} of task {TASK} env {ENV} (episode step 4" in str(exc)


@pytest.mark.parametrize("workers", [0, 2])
def test_process_sampler_rejects_wrong_shapes(monkeypatch: pytest.MonkeyPatch, workers: int) -> None:
    monkeypatch.setenv(FAULT_VAR, f"wrong_shape:4:{TASK}:{ENV}")
    faulty_env_plugin._instances.clear()
    dist = _dist("process")
    with ProcessSampler(dist, _policy(), num_envs=3, num_workers=workers) as sampler:
        with pytest.raises(EnvError, match=rf"^task {TASK} env {ENV}: step 4 returned an observation of shape "
                                           r"\(3,\), expected \(2,\)$"):
            sampler.sample(dist.sample(2, 0), seed=0)


def test_process_sampler_after_a_fault_returns_only_whole_fresh_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """The failed call returns nothing; once the env is fixed the same sampler's next batch equals a fresh
    sampler's (nothing of the failed collection leaks into it)."""
    dist = _dist("process")
    tasks = dist.sample(2, 0)
    policy = _policy()
    monkeypatch.setenv(FAULT_VAR, f"raise:4:{TASK}:{ENV}")
    faulty_env_plugin._instances.clear()
    sampler = ProcessSampler(dist, policy, num_envs=3, num_workers=2)
    try:
        with pytest.raises(EnvError, match=rf"task {TASK} env {ENV}: step 4 failed: RuntimeError"):
            sampler.sample(tasks, seed=5)
        monkeypatch.delenv(FAULT_VAR)
        again = sampler.sample(tasks, seed=5)  # workers were stopped; new ones build fresh envs
    finally:
        sampler.close()
    with ProcessSampler(dist, policy, num_envs=3, num_workers=0) as fresh:
        ref = fresh.sample(tasks, seed=5)
    for name in ("obs", "actions", "rewards", "mask", "log_probs"):
        assert torch.equal(getattr(again, name), getattr(ref, name)), name
    assert np.isfinite(again.obs.numpy()).all()


@pytest.mark.ray
def test_ray_sampler_forwards_nonfinite_output_as_numeric_error() -> None:
    """The Ray engine re-raises a worker's EnvOutputError with its fields (still a NumericError)."""
    ray = pytest.importorskip("ray")
    from fastadapt.samplers import RaySampler

    assert not ray.is_initialized()
    env_vars = {"PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
                FAULT_VAR: f"nan_reward:4:{TASK}:{ENV}"}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=f"/tmp/fa-ray-f{os.getpid()}",
             runtime_env={"env_vars": env_vars})
    try:
        dist = _dist("process")
        with RaySampler(dist, _policy(), num_envs=3, num_workers=2) as sampler:
            with pytest.raises(EnvOutputError) as err:
                sampler.sample(dist.sample(2, 0), None, seed=0)
    finally:
        ray.shutdown()
    exc = err.value
    assert isinstance(exc, NumericError) and isinstance(exc, EnvError)
    assert (exc.kind, exc.task_index, exc.env_index, exc.step) == ("reward", TASK, ENV, 4)
