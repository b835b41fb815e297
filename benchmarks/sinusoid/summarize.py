"""Summarise the eval JSON files of this folder into results.md and adaptation.png.

Usage (from the repository root): .venv/bin/python benchmarks/sinusoid/summarize.py
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).parent


def main() -> None:
    runs = sorted(p for p in HERE.glob("*.json"))
    lines = ["# Sinusoid regression: query MSE on 1000 held-out test tasks (mean ± s.e.)", ""]
    fig, axes = plt.subplots(1, len(runs), figsize=(4.5 * len(runs), 3.6), squeeze=False)
    for ax, path in zip(axes[0], runs):
        rows = json.loads(path.read_text())["rows"]
        methods = list(dict.fromkeys(r["method"] for r in rows))
        steps = sorted({r["setting"]["adapt_steps"] for r in rows})
        shot = rows[0]["setting"]["shot"]
        lines += [f"## {path.stem} ({shot}-shot)", "", "| steps | " + " | ".join(methods) + " |",
                  "|---|" + "---|" * len(methods)]
        cell = {(r["method"], r["setting"]["adapt_steps"]): r for r in rows}
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
        ax.set_yscale("log")
        ax.set_title(f"{path.stem}", fontsize=9)
        ax.set_xlabel("adaptation steps")
        ax.set_ylabel("query MSE")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(HERE / "adaptation.png", dpi=110)
    (HERE / "results.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
