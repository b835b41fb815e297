"""Summarise the eval JSON files of this folder into results.md and adaptation.png.

Single-run files (``NAME.json``) get one table each (mean ± s.e. over the 1000 test tasks). Files named
``NAME-s<seed>.json`` are grouped by ``NAME``: a table with the per-seed means and the mean ± s.e. over seeds
(s.e. = sample std over seeds / sqrt(seeds)), and one panel with that mean ± s.e. over seeds.
Validation-task curves used for choosing the setup (``validation/*.json``, from validate.py) get a table too.

Usage (from the repository root): .venv/bin/python benchmarks/sinusoid/summarize.py
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).parent
SEEDED = re.compile(r"^(?P<name>.+)-s(?P<seed>\d+)$")


def _cells(path: Path) -> tuple[dict[tuple[str, int], dict], list[str], list[int], int]:
    rows = json.loads(path.read_text())["rows"]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    steps = sorted({r["setting"]["adapt_steps"] for r in rows})
    cell = {(r["method"], r["setting"]["adapt_steps"]): r for r in rows}
    return cell, methods, steps, rows[0]["setting"]["shot"]


def mean_se(xs: list[float]) -> tuple[float, float]:
    """Mean and standard error (sample std / sqrt(n)) of ``xs``; se is nan for one value."""
    n = len(xs)
    m = sum(xs) / n
    se = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1) / n) if n > 1 else float("nan")
    return m, se


def single(path: Path, ax: plt.Axes, lines: list[str]) -> None:
    cell, methods, steps, shot = _cells(path)
    lines += [f"## {path.stem} ({shot}-shot)", "", "| steps | " + " | ".join(methods) + " |",
              "|---|" + "---|" * len(methods)]
    for k in steps:
        vals = []
        for m in methods:
            r = cell.get((m, k))
            vals.append("-" if r is None else f"{r['mean']:.3f} ± {r['se']:.3f}")
        lines.append(f"| {k} | " + " | ".join(vals) + " |")
    lines.append("")
    for m in methods:
        xs = [k for k in steps if (m, k) in cell]
        ax.errorbar(xs, [cell[(m, k)]["mean"] for k in xs], yerr=[cell[(m, k)]["se"] for k in xs],
                    marker="o", ms=3, capsize=2, label=m)
    ax.set_title(f"{path.stem}", fontsize=9)


def group(name: str, paths: dict[int, Path], ax: plt.Axes, lines: list[str]) -> None:
    seeds = sorted(paths)
    per_seed = {s: _cells(paths[s]) for s in seeds}
    cell0, methods, steps, shot = per_seed[seeds[0]]
    lines += [f"## {name} ({shot}-shot), seeds {', '.join(map(str, seeds))}", "",
              "Per seed: mean ± s.e. over that seed's 1000 test tasks. Last columns: mean ± s.e. over seeds.", "",
              "| steps | " + " | ".join(f"{methods[0]} seed {s}" for s in seeds) + " | "
              + " | ".join(f"{m} (over seeds)" for m in methods) + " |",
              "|---|" + "---|" * (len(seeds) + len(methods))]
    for k in steps:
        vals = [f"{per_seed[s][0][(methods[0], k)]['mean']:.3f} ± {per_seed[s][0][(methods[0], k)]['se']:.3f}"
                for s in seeds]
        for m in methods:
            xs = [per_seed[s][0][(m, k)]["mean"] for s in seeds if (m, k) in per_seed[s][0]]
            mu, se = mean_se(xs)
            vals.append(f"**{mu:.3f} ± {se:.3f}**" if m == methods[0] else f"{mu:.3f} ± {se:.3f}")
        lines.append(f"| {k} | " + " | ".join(vals) + " |")
    lines.append("")
    for m in methods:
        stats = [mean_se([per_seed[s][0][(m, k)]["mean"] for s in seeds]) for k in steps]
        ax.errorbar(steps, [a for a, _ in stats], yerr=[0 if math.isnan(b) else b for _, b in stats],
                    marker="o", ms=3, capsize=2, label=m)
    ax.set_title(f"{name}: mean ± s.e. over {len(seeds)} seeds", fontsize=9)


def validation(lines: list[str]) -> None:
    files = sorted((HERE / "validation").glob("*.json"))
    if not files:
        return
    lines += ["## Validation tasks (setup selection; 1000 `val`-split tasks, never the test tasks)", "",
              "From `validate.py`: query MSE ± s.e. on validation tasks after k steps.", "",
              "| run | shot | seed | meta-updates | k=0 | k=1 | k=2 | k=5 | k=10 |", "|---|---|---|---|---|---|---|---|---|"]
    for f in files:
        for r in json.loads(f.read_text()):
            m, se = r["mean"], r["se"]
            lines.append(f"| {f.stem} | {r['shot']} | {r['seed']} | {r['iteration']} | "
                         + " | ".join(f"{m[k]:.3f} ± {se[k]:.3f}" for k in (0, 1, 2, 5, 10)) + " |")
    lines.append("")


def main() -> None:
    singles: list[Path] = []
    groups: dict[str, dict[int, Path]] = defaultdict(dict)
    for p in sorted(HERE.glob("*.json")):
        mt = SEEDED.match(p.stem)
        if mt:
            groups[mt["name"]][int(mt["seed"])] = p
        else:
            singles.append(p)
    n = len(singles) + len(groups)
    lines = ["# Sinusoid regression: query MSE on 1000 held-out test tasks (mean ± s.e.)", ""]
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.6 * rows), squeeze=False)
    panels = iter(axes.flat)
    for name in sorted(groups):
        group(name, groups[name], next(panels), lines)
    for path in singles:
        single(path, next(panels), lines)
    validation(lines)
    for ax in list(panels):
        ax.set_visible(False)
    for ax in [a for a in axes.flat if a.get_visible()]:
        ax.set_yscale("log")
        ax.set_xlabel("adaptation steps")
        ax.set_ylabel("query MSE")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(HERE / "adaptation.png", dpi=110)
    (HERE / "results.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
