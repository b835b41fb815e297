"""Run directories and the generic training loop (``fastadapt train``/``eval``/``bench``).

A run directory holds ``config.yaml`` (fully resolved), ``metrics.jsonl`` (one JSON object per iteration,
with ``iteration``, ``env_steps`` or ``examples``, ``wall_time``), ``summary.json``, ``checkpoints/``,
TensorBoard events under ``tb/``, ``log.txt`` (the library's log records, e.g. sampler worker restarts)
and ``eval.json`` after ``eval``.

Guarantees:
- everything is validated and built before the run directory is created; an existing directory is only
  touched with ``--resume``;
- checkpoints are atomic; ``--resume`` continues from the latest complete checkpoint and truncates
  ``metrics.jsonl`` to it, so the resumed run's metrics equal an uninterrupted run's (wall times aside);
- a NaN/Inf metric (or a :class:`NumericError` from the learner) stops training with a message naming the
  iteration and quantity, writes a ``fault`` record to metrics.jsonl and keeps the last good checkpoint.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from fastadapt import __version__
from fastadapt.core.errors import CheckpointError, ConfigError, EnvError, NumericError, UserInputError
from fastadapt.core.registry import BENCHMARKS
from fastadapt.core.types import BenchContext, Row
from fastadapt.eval.plots import plot_rows, plot_training_curve
from fastadapt.eval.report import write_results
from fastadapt.experiment import catalog
from fastadapt.experiment.checkpoints import (
    atomic_write_text,
    latest_checkpoint,
    list_checkpoints,
    read_checkpoint,
    save_checkpoint,
)
from fastadapt.experiment.config import (
    ResolvedConfig,
    apply_overrides,
    dump_yaml,
    identity_hash,
    load_config,
    read_yaml,
    resolve,
    validate_section,
)
from fastadapt.experiment.progress import ProgressReporter, make_tracker

@dataclass
class TrainResult:
    run_dir: Path
    iterations: int
    last_metrics: dict[str, Any]


def _default_run_dir(cfg: ResolvedConfig) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.name}-s{cfg.train.seed}-{stamp}"


def build_learner(cfg: ResolvedConfig) -> Any:
    """Build the task object and the learner from a resolved config."""
    task = cfg.task_entry.build(cfg.task)
    learner = cfg.algo_entry.build(cfg.algo, task, cfg.train.seed)
    for attr in ("train_step", "state_dict", "load_state_dict", "evaluate"):
        if not callable(getattr(learner, attr, None)):
            raise TypeError(f"algorithm {cfg.algo_entry.name!r} built an object without {attr}()")
    return learner


def _attach_run_log(path: Path) -> logging.Handler:
    """Send the library's log records (e.g. sampler worker restarts) to RUN_DIR/log.txt and stderr."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("fastadapt")
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    return handler


def _check_metrics(metrics: dict[str, Any], iteration: int) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for k, v in metrics.items():
        if hasattr(v, "item"):
            v = v.item()
        if isinstance(v, bool):
            v = int(v)
        if isinstance(v, float) and not math.isfinite(v):
            raise NumericError(k, iteration)
        clean[k] = v
    return clean


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Complete records of a metrics.jsonl (a partial last line, as after kill -9, is ignored)."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return out


def _truncate_metrics(path: Path, upto: int) -> None:
    keep = [r for r in read_metrics(path) if "fault" not in r and int(r.get("iteration", 0)) <= upto]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in keep))


class _TB:
    """TensorBoard writer, created lazily (tensorboard is slow to import)."""

    def __init__(self, log_dir: Path, enabled: bool, purge_step: int | None) -> None:
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for k, v in metrics.items():
            if isinstance(v, (int, float)) and k != "iteration":
                self.writer.add_scalar(k, v, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def train(
    config: str,
    overrides: list[str] | None = None,
    *,
    out: Path | None = None,
    seed: int | None = None,
    resume: bool = False,
    quiet: bool = False,
    console: Console | None = None,
) -> TrainResult:
    """``fastadapt train``: validate, build, then train with checkpoints, logs and a progress bar."""
    catalog.load_all()
    console = console or Console(stderr=True)
    if resume and out is not None and (out / "config.yaml").is_file() and config in ("", "-"):
        config = str(out / "config.yaml")
    cfg = load_config(config, overrides, seed)
    run_dir = out if out is not None else _default_run_dir(cfg)
    ckpt_dir = run_dir / "checkpoints"
    metrics_path = run_dir / "metrics.jsonl"

    start_state = None
    start_iter, wall_offset = 0, 0.0
    if resume and (not run_dir.exists() or not any(run_dir.iterdir())):
        # killed before anything was written: nothing to resume, start the run
        console.print(f"--resume: {run_dir} holds no run yet; starting it from iteration 0")
        resume = False
    if resume:
        saved = run_dir / "config.yaml"
        if not saved.is_file():
            raise ConfigError(f"--resume: {run_dir} is not a run directory (no config.yaml)")
        saved_raw = read_yaml(saved)
        saved_cfg = resolve(saved_raw, str(saved))
        if saved_cfg.hash() != cfg.hash():
            raise ConfigError(
                f"--resume: the config differs from the one in {saved} (only train.iterations, logging and "
                f"eval settings may change on resume)"
            )
        ckpt = latest_checkpoint(ckpt_dir)
        if ckpt is not None:
            # the hash as written by the version that trained the run is accepted too (new defaulted options)
            info, start_state = read_checkpoint(ckpt, (cfg.hash(), identity_hash(saved_raw)))
            start_iter, wall_offset = info.iteration, info.wall_time
    elif run_dir.exists() and any(run_dir.iterdir()):
        raise ConfigError(f"--out: {run_dir} already exists and is not empty; use --resume or another --out")

    torch.set_num_threads(cfg.train.threads)
    learner = build_learner(cfg)
    if start_state is not None:
        learner.load_state_dict(start_state["learner"])

    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", dump_yaml(cfg.raw))
    if resume:
        _truncate_metrics(metrics_path, start_iter)
    elif metrics_path.exists():
        metrics_path.unlink()

    total = cfg.train.iterations
    key = getattr(learner, "key_metric", None)
    log_handler = _attach_run_log(run_dir / "log.txt")
    tb = _TB(run_dir / "tb", cfg.train.tensorboard, purge_step=start_iter + 1 if resume else None)
    t0 = time.monotonic()
    last: dict[str, Any] = {}
    status = "interrupted"
    fault: str | None = None
    last_ckpt_iter = start_iter
    it = start_iter + 1

    def checkpoint(iteration: int) -> None:
        nonlocal last_ckpt_iter
        wall = wall_offset + time.monotonic() - t0
        save_checkpoint(
            ckpt_dir,
            iteration,
            {"learner": learner.state_dict()},
            config_hash=cfg.hash(),
            wall_time=wall,
            keep=cfg.train.keep_checkpoints,
            extra={"config_name": cfg.name},
        )
        last_ckpt_iter = iteration

    try:
        with open(metrics_path, "a") as mf, ProgressReporter(
            total, f"train {cfg.name}", key, quiet=quiet, log_every=cfg.train.log_every if quiet else None,
            start=start_iter, console=console,
        ) as bar:
            for it in range(start_iter + 1, total + 1):
                try:
                    metrics = _check_metrics(dict(learner.train_step(it)), it)
                except NumericError as exc:
                    if exc.iteration is None:
                        exc = NumericError(exc.quantity, it, getattr(exc, "detail", ""))
                    raise exc from None
                record = {"iteration": it, **metrics, "wall_time": round(wall_offset + time.monotonic() - t0, 3)}
                mf.write(json.dumps(record) + "\n")
                mf.flush()
                tb.log(it, record)
                last = record
                bar.update(it, record)
                if it % cfg.train.checkpoint_every == 0 or it == total:
                    os.fsync(mf.fileno())
                    checkpoint(it)
        status = "finished"
    except NumericError as exc:
        status = "failed"
        fault = str(exc)
        with open(metrics_path, "a") as mf:
            mf.write(json.dumps({"iteration": exc.iteration, "fault": fault, "quantity": exc.quantity,
                                 "last_checkpoint": last_ckpt_iter}) + "\n")
        detail = getattr(exc, "detail", "")
        raise NumericError(
            exc.quantity, exc.iteration,
            (f"{detail}; " if detail else "")
            + f"training stopped; last good checkpoint is iteration {last_ckpt_iter} in {ckpt_dir}",
        ) from None
    except EnvError as exc:
        # an env that raised or returned a malformed step (the sampler names task and env): same bookkeeping
        status = "failed"
        fault = f"{exc} (iteration {it})"
        with open(metrics_path, "a") as mf:
            mf.write(json.dumps({"iteration": it, "fault": fault, "quantity": "env",
                                 "last_checkpoint": last_ckpt_iter}) + "\n")
        raise EnvError(
            f"{exc} at iteration {it} (training stopped; last good checkpoint is iteration {last_ckpt_iter} "
            f"in {ckpt_dir})"
        ) from None
    finally:
        tb.close()
        logging.getLogger("fastadapt").removeHandler(log_handler)
        log_handler.close()
        summary = {
            "name": cfg.name,
            "algo": cfg.algo_entry.name,
            "task": cfg.task_entry.name,
            "status": status,
            "fault": fault,
            "iterations": last.get("iteration", start_iter),
            "target_iterations": total,
            "last_metrics": last,
            "last_checkpoint": last_ckpt_iter,
            "wall_s": round(wall_offset + time.monotonic() - t0, 3),
            "fastadapt_version": __version__,
            "config_hash": cfg.hash(),
        }
        atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return TrainResult(run_dir, total, last)


# ---------------------------------------------------------------------------------------------- eval
def load_run(run_dir: Path, overrides: list[str] | None = None) -> tuple[ResolvedConfig, Any, int]:
    """Config, learner restored from the latest checkpoint, and that checkpoint's iteration."""
    catalog.load_all()
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        raise ConfigError(f"RUN_DIR: {run_dir} is not a run directory (no config.yaml)")
    for item in overrides or []:
        if not item.split("=", 1)[0].strip().startswith("eval."):
            raise ConfigError(f"--set {item!r}: only eval.* keys can be changed when evaluating a run")
    written = read_yaml(saved)
    raw = apply_overrides(written, list(overrides or []))
    cfg = resolve(raw, str(saved))
    torch.set_num_threads(cfg.train.threads)  # evaluate with the run's thread count, as it trained
    learner = build_learner(cfg)
    ckpts = list_checkpoints(run_dir / "checkpoints")
    if not ckpts:
        raise CheckpointError(f"{run_dir / 'checkpoints'}: no checkpoint to evaluate (train first)")
    info, state = read_checkpoint(ckpts[-1], (cfg.hash(), identity_hash(written)))
    learner.load_state_dict(state["learner"])
    return cfg, learner, info.iteration


def evaluate(
    run_dir: Path,
    overrides: list[str] | None = None,
    *,
    json_out: Path | None = None,
    console: Console | None = None,
) -> list[Row]:
    """``fastadapt eval``: run the learner's meta-test protocol; write eval.json (and ``json_out``)."""
    console = console or Console(stderr=True)
    cfg, learner, iteration = load_run(run_dir, overrides)
    eval_cfg = cfg.eval
    t0 = time.monotonic()
    rows = learner.evaluate(eval_cfg, cfg.train.seed)
    meta = {
        "run": str(run_dir),
        "config": cfg.name,
        "algo": cfg.algo_entry.name,
        "checkpoint_iteration": iteration,
        "eval": cfg.raw.get("eval", {}),
        "wall_s": round(time.monotonic() - t0, 3),
    }
    paths = write_results(run_dir, rows, title=f"eval: {cfg.name}", meta=meta, stem="eval")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(paths["json"].read_text())
    return rows


# --------------------------------------------------------------------------------------------- bench
def bench(
    name: str,
    overrides: list[str] | None = None,
    *,
    out: Path | None = None,
    json_out: Path | None = None,
    quiet: bool = False,
    seed: int = 0,
    runs: list[Path] | None = None,
    console: Console | None = None,
) -> tuple[list[Row], Path]:
    """``fastadapt bench NAME``: run a named benchmark; write results.json/.md/.png into ``out``.

    ``runs`` are trained run directories whose evaluation rows join the table (e.g. RL² next to the bandit
    baselines): each run's ``eval.json`` is used if present, else the run is evaluated now; only rows whose
    setting is one of the benchmark's cells are kept.
    """
    catalog.load_all()
    entry = BENCHMARKS.get(name, key="NAME")
    raw = apply_overrides({}, list(overrides or []))
    if "seed" in entry.config.model_fields and "seed" not in raw:
        raw["seed"] = seed  # --seed reaches benchmarks that have their own seed field
    cfg = validate_section(entry.config, raw, "")
    out_dir = out if out is not None else Path("bench-results") / name
    ctx = BenchContext(out=out_dir, seed=seed, quiet=quiet, track=make_tracker(quiet, console))
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    rows = list(entry.run(cfg, ctx))
    rows += _rows_from_runs(runs or [], {json.dumps(r.setting, sort_keys=True) for r in rows})
    wall = time.monotonic() - t0
    meta = {"benchmark": name, "config": cfg.model_dump(mode="json"), "wall_s": round(wall, 3),
            "fastadapt_version": __version__}
    notes = list(ctx.notes) + [f"Wall time: {wall:.1f} s."]
    paths = write_results(out_dir, rows, title=f"benchmark: {name}", references=ctx.references,
                          notes=notes, meta=meta)
    if rows:
        if ctx.plot is not None:
            ctx.plot(rows, out_dir / "results.png")
        else:
            plot_rows(rows, out_dir / "results.png", title=name)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(paths["json"].read_text())
    return rows, out_dir


def _rows_from_runs(runs: list[Path], cells: set[str]) -> list[Row]:
    from fastadapt.eval.report import load_rows

    out: list[Row] = []
    for run in runs:
        if (run / "eval.json").is_file():
            rows, _ = load_rows(run / "eval.json")
        else:
            rows = evaluate(run)
        matched = [r for r in rows if json.dumps(r.setting, sort_keys=True) in cells]
        if not matched:
            have = sorted({json.dumps(r.setting, sort_keys=True) for r in rows})
            raise ConfigError(f"--run {run}: none of its eval settings {have} is a cell of this benchmark")
        out += matched
    return out


# ---------------------------------------------------------------------------------------------- plot
def plot(target: Path, out: Path | None = None) -> Path:
    """``fastadapt plot``: a run directory's training curve (and eval) or a result JSON's rows."""
    from fastadapt.eval.report import load_rows

    if target.is_dir():
        records = read_metrics(target / "metrics.jsonl")
        if not records:
            raise UserInputError(f"{target}: no metrics.jsonl records to plot")
        summary = {}
        if (target / "summary.json").is_file():
            summary = json.loads((target / "summary.json").read_text())
        numeric = [k for k, v in records[-1].items() if isinstance(v, (int, float))
                   and k not in {"iteration", "wall_time", "env_steps", "examples"}]
        key = next((k for k in ("loss", "return", "reward") if k in numeric), numeric[0] if numeric else "wall_time")
        out = out or target / "curve.png"
        plot_training_curve(records, key, out, title=summary.get("name", target.name))
        if (target / "eval.json").is_file():
            rows, _ = load_rows(target / "eval.json")
            if rows:
                plot_rows(rows, out.with_name(out.stem + "-eval.png"), title=f"eval {target.name}")
        return out
    if not target.is_file():
        raise UserInputError(f"{target}: no such run directory or result file")
    try:
        rows, _ = load_rows(target)
    except (ValueError, json.JSONDecodeError) as exc:
        raise UserInputError(f"{target}: {exc}") from None
    out = out or target.with_suffix(".png")
    plot_rows(rows, out, title=target.stem)
    return out
