"""Plots: result rows (adaptation curves or grouped bars) and training curves, as PNG files."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastadapt.core.types import Row


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _numeric_axis(rows: Sequence[Row]) -> str | None:
    """The setting key that varies across rows with numeric values (e.g. adapt_steps, pulls)."""
    keys = set.intersection(*(set(r.setting) for r in rows)) if rows else set()
    for key in ("adapt_steps", "episodes", "pulls", "shot", "meta_batch", "envs"):
        if key in keys:
            vals = {r.setting[key] for r in rows}
            if len(vals) > 1 and all(isinstance(v, (int, float)) for v in vals):
                return key
    for key in sorted(keys):
        vals = {r.setting[key] for r in rows}
        if len(vals) > 1 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            return key
    return None


def plot_rows(rows: Sequence[Row], path: Path, title: str = "", ylabel: str = "mean") -> Path:
    """Line plot per method over a numeric setting key (with ±se bars), else grouped bars."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    axis = _numeric_axis(rows)
    if axis is not None:
        groups: dict[tuple[str, str], list[Row]] = {}
        for r in rows:
            rest = {k: v for k, v in r.setting.items() if k != axis}
            label = r.method + (f" ({', '.join(f'{k}={v}' for k, v in rest.items())})" if rest else "")
            groups.setdefault((r.method, label), []).append(r)
        for (_, label), rs in groups.items():
            rs = sorted(rs, key=lambda r: r.setting[axis])
            xs = [r.setting[axis] for r in rs]
            ys = [r.mean for r in rs]
            es = [r.se if r.se == r.se else 0.0 for r in rs]
            ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=label)
        ax.set_xlabel(axis)
        ax.legend(fontsize=8)
    else:
        settings: list[str] = []
        methods: list[str] = []
        for r in rows:
            s = json.dumps(r.setting, sort_keys=True)
            if s not in settings:
                settings.append(s)
            if r.method not in methods:
                methods.append(r.method)
        width = 0.8 / max(1, len(methods))
        for i, m in enumerate(methods):
            xs, ys, es = [], [], []
            for j, s in enumerate(settings):
                for r in rows:
                    if r.method == m and json.dumps(r.setting, sort_keys=True) == s:
                        xs.append(j + i * width)
                        ys.append(r.mean)
                        es.append(r.se if r.se == r.se else 0.0)
            ax.bar(xs, ys, width=width, yerr=es, label=m, capsize=2)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(settings))])
        ax.set_xticklabels(
            [", ".join(f"{k}={v}" for k, v in json.loads(s).items()) for s in settings],
            rotation=30, ha="right", fontsize=7,
        )
        ax.legend(fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_training_curve(records: Sequence[dict[str, Any]], key: str, path: Path, title: str = "") -> Path:
    """A metric from metrics.jsonl against iterations (and env steps / examples if present)."""
    plt = _plt()
    pts = [(r["iteration"], r[key]) for r in records if key in r and isinstance(r.get(key), (int, float))]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if pts:
        xs, ys = zip(*pts)
        ax.plot(xs, ys, lw=1.5)
    ax.set_xlabel("iteration")
    ax.set_ylabel(key)
    ax.set_title(title or key)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
