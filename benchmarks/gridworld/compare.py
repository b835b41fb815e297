"""Gridworld table: VariBAD and RL² return per episode of a 4-episode trial next to the exact Bayes-optimal.

Usage (from the repo root):

    .venv/bin/python benchmarks/gridworld/compare.py --bayes benchmarks/gridworld/bayes_optimal.json \
        [--prev OLD_RESULTS.json] --group LABEL EVAL_JSON [EVAL_JSON ...] [--group ...] \
        [--plot METHOD ...] --out benchmarks/gridworld

* ``--bayes``: the JSON written by ``bayes_optimal.py`` (exact DP, computed once).
* ``--prev``: a ``results.json`` written earlier by this script; its per-run rows are kept (so that groups
  whose eval files are no longer around stay in the table, recomputed from the same per-run rows), except
  those of a ``--group`` label given again, which the new files replace (re-running is idempotent).
* ``--group LABEL FILES``: files written by ``fastadapt eval RUN_DIR --json F`` (one per seed; one row per
  episode on held-out trials plus the trial total; VariBAD and RL² both write them), shown as method
  ``LABEL``: per seed, and the mean over seeds. RL²'s total row carries ``horizon`` in its setting too; only
  ``episode`` / ``episodes`` are kept here.
* ``--plot``: methods (seed-mean labels, e.g. "rl2 400 it, sampled, mean of 3 seeds") drawn in
  ``results.png`` next to the Bayes-optimal line; default: all.

Writes ``results.json`` (rows: per seed and the mean over seeds), ``results.md`` and ``results.png``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np


def _eval_rows(path: Path, label: str) -> list[dict]:
    rows = json.loads(path.read_text())["rows"]
    out = []
    for r in rows:
        setting = {k: v for k, v in r["setting"].items() if k in ("episode", "episodes")}
        out.append(r | {"method": label, "setting": setting, "run": path.name})
    return out


def _key(setting: dict) -> str:
    return f"episode {setting['episode']}" if "episode" in setting else f"total ({setting['episodes']} ep.)"


def _seed_mean(rows: list[dict], method: str) -> list[dict]:
    """Mean over seeds (runs) per setting; se = std over seeds / sqrt(#seeds)."""
    out = []
    by: dict[str, list[dict]] = {}
    for r in rows:
        if r["method"] == method:
            by.setdefault(json.dumps(r["setting"], sort_keys=True), []).append(r)
    for k, rs in by.items():
        m = np.array([r["mean"] for r in rs])
        se = float(m.std(ddof=1) / math.sqrt(len(m))) if len(m) > 1 else rs[0]["se"]
        out.append({"method": f"{method}, mean of {len(m)} seeds", "setting": json.loads(k),
                    "mean": float(m.mean()), "se": se, "n": len(m), "per_seed": [float(x) for x in m]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bayes", type=Path, required=True)
    ap.add_argument("--group", nargs="+", action="append", default=[], metavar="LABEL FILE")
    ap.add_argument("--prev", type=Path, default=None)
    ap.add_argument("--plot", nargs="+", default=None, metavar="METHOD")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    bayes = json.loads(a.bayes.read_text())
    rows: list[dict] = list(bayes["rows"])
    seed_rows: list[dict] = []
    labels: list[str] = []
    if a.prev is not None:  # earlier per-run rows, except those of a group given again now
        new = {label for label, *_ in a.group}
        seed_rows += [r for r in json.loads(a.prev.read_text())["per_run_rows"] if r["method"] not in new]
        labels += list(dict.fromkeys(r["method"] for r in seed_rows))
    for label, *files in a.group:
        labels.append(label)
        for f in files:
            seed_rows += _eval_rows(Path(f), label)
    for label in labels:
        rows += _seed_mean(seed_rows, label)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "results.json").write_text(json.dumps({"rows": rows, "per_run_rows": seed_rows}, indent=1))
    # markdown table: methods x settings
    settings = [r["setting"] for r in rows if r["method"] == "bayes_optimal"]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    lines = ["| method | " + " | ".join(_key(s) for s in settings) + " |",
             "|---|" + "---|" * len(settings)]
    for m in methods:
        cells = []
        for s in settings:
            hit = [r for r in rows if r["method"] == m and r["setting"] == s]
            cells.append(f"{hit[0]['mean']:.2f} ± {hit[0]['se']:.2f}" if hit and hit[0]["se"] else
                         (f"{hit[0]['mean']:.2f} (exact)" if hit else "-"))
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Per run (each: mean ± s.e. over held-out trials):")
    lines.append("")
    for r in seed_rows:
        lines.append(f"- {r['method']} | {Path(r['run']).name} | {_key(r['setting'])}: {r['mean']:.3f} ± "
                     f"{r['se']:.3f} (n={r['n']})")
    (a.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    eps = [s["episode"] for s in settings if "episode" in s]
    for m in methods:
        if a.plot is not None and m != "bayes_optimal" and m not in a.plot:
            continue
        ys = [next((r for r in rows if r["method"] == m and r["setting"] == {"episode": e}), None) for e in eps]
        if any(y is None for y in ys):
            continue
        ax.errorbar(eps, [y["mean"] for y in ys], yerr=[1.96 * (y["se"] or 0) for y in ys], marker="o", label=m,
                    capsize=3, linestyle="--" if m == "bayes_optimal" else "-")
    ax.set_xlabel("episode of the trial")
    ax.set_ylabel("return per episode")
    ax.set_xticks(eps)
    ax.set_title("Gridworld 5x5: return per episode of a trial, held-out trials")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(a.out / "results.png", dpi=120)


if __name__ == "__main__":
    main()
