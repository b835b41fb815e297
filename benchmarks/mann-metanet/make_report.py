"""Collect benchmarks/mann-metanet/results/* into results.json, results.md and results.png.

For every config: untrained rows (untrained.json, untrained_runs.json) and trained rows (eval_episodes.json,
eval_runs.json), plus CPU/wall seconds parsed from the `/usr/bin/time -v` files and the load log.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
R = HERE / "results"
CONFIGS = ["metanet-digits", "mann-digits", "metanet-omniglot", "mann-omniglot"]


def timing(path: Path) -> dict[str, float] | None:
    if not path.exists():
        return None
    t = path.read_text()
    if "User time" not in t:
        return None  # still running
    user = float(re.search(r"User time \(seconds\): ([\d.]+)", t).group(1))
    system = float(re.search(r"System time \(seconds\): ([\d.]+)", t).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", t).group(1)
    parts = [float(p) for p in wall.split(":")]
    wall_s = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    return {"cpu_s": round(user + system, 1), "wall_s": round(wall_s, 1)}


def rows(path: Path) -> list[dict]:
    """Rows of a result file, flattened like `fastadapt eval` writes them (``extra`` merged in)."""
    out = json.loads(path.read_text())["rows"] if path.exists() else []
    return [{**{k: v for k, v in r.items() if k != "extra"}, **r.get("extra", {})} for r in out]


def main() -> None:
    out: list[dict] = []
    md = ["| config | setting | untrained | trained [95% CI] | n |", "|---|---|---|---|---|"]
    times: dict[str, dict] = {}
    for c in CONFIGS:
        d = R / c
        if not d.exists():
            continue
        iters = sum(1 for _ in (d / "metrics.jsonl").open()) if (d / "metrics.jsonl").exists() else 0
        keys = ("train", "eval", "eval_20way", "runs", "untrained", "untrained_20way", "untrained_runs")
        times[c] = {k: timing(R / f"{c}.{k}.time") for k in keys}
        times[c]["iterations"] = iters
        names = (f"{c}.json", f"{c}.20way.json", f"{c}.runs.json")
        untrained = [r for f in names for r in rows(R / "untrained" / f)]
        base = {json.dumps(r["setting"], sort_keys=True): r for r in untrained}
        for r in rows(d / "eval_episodes.json") + rows(d / "eval_20way.json") + rows(d / "eval_runs.json"):
            key = json.dumps(r["setting"], sort_keys=True)
            b = base.get(key)
            lo, hi = r["ci95"]
            out.append({**r, "setting": {**r["setting"], "config": c},
                        "untrained_mean": b["mean"] if b else None, "untrained_ci95": b["ci95"] if b else None})
            s = ", ".join(f"{k}={v}" for k, v in r["setting"].items())
            bs = f"{b['mean']:.3f}" if b else "-"
            md.append(f"| {c} | {s} | {bs} | **{r['mean']:.3f}** [{lo:.3f}, {hi:.3f}] | {r['n']} |")
    (HERE / "results.json").write_text(json.dumps({"rows": out, "timing": times}, indent=1))
    lines = ["# MANN and Meta Networks: held-out accuracy, untrained vs trained (seed 0)", "", *md, "",
             "| config | iterations | train CPU s | train wall s | eval CPU s (episodes / runs) |",
             "|---|---|---|---|---|"]
    for c, t in times.items():
        tr, ru = t["train"] or {}, t["runs"] or {}
        ev = sum((t[k] or {}).get("cpu_s", 0.0) for k in ("eval", "eval_20way"))
        lines.append(f"| {c} | {t['iterations']} | {tr.get('cpu_s', '-')} | {tr.get('wall_s', '-')} | "
                     f"{ev:.1f} / {ru.get('cpu_s', '-')} |")
    (HERE / "results.md").write_text("\n".join(lines) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(10, 4))
        labels = [f"{r['setting']['config']}\n" + ("runs" if r["setting"].get("protocol") else
                  f"{r['setting']['way']}w{r['setting']['shot']}s") for r in out]
        xs = range(len(out))
        ax.bar([x - 0.2 for x in xs], [r["untrained_mean"] or 0 for r in out], 0.4, label="untrained")
        ax.bar([x + 0.2 for x in xs], [r["mean"] for r in out], 0.4,
               yerr=[1.96 * r["se"] for r in out], label="trained (95% CI)")
        ax.set_xticks(list(xs), labels, fontsize=6)
        ax.set_ylabel("held-out query accuracy")
        ax.legend()
        fig.tight_layout()
        fig.savefig(HERE / "results.png", dpi=120)
    except ImportError:
        pass


if __name__ == "__main__":
    main()
