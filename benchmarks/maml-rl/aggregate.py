"""Aggregate the 2D-navigation runs of run_nav2d.sh over seeds: results.json / results.md / adaptation_curve.png.

Usage: .venv/bin/python benchmarks/maml-rl/aggregate.py [final|iter20] [RUNS_DIR]

RUNS_DIR defaults to ``runs/`` (the current runs: MAML-TRPO with the exact KL curvature, ProMP); the
MAML-TRPO runs made before the fix live in ``fisher-fvp/`` (``aggregate.py final fisher-fvp`` writes
their table into that folder; the folder also keeps the original aggregate of that session).

``final``: each run's ``eval.json`` (after all its iterations); ``iter20``: the meta-test of the checkpoint at
iteration 20 kept in ``<run>/at-iter20/`` (the runs were first stopped at 20 iterations, evaluated, then
resumed to 40). Outputs: results[-iter20].json, results[-iter20].md, adaptation_curve[-iter20].png.

For every (method, adapt_steps) the per-seed value is that seed's eval mean (return per episode averaged over
its 40 held-out tasks); the table gives the mean over seeds, the standard error over seeds and each seed's
value. ``pretrained`` / ``random-init`` / ``oracle`` come from the maml-trpo runs (the promp runs evaluate
the same baselines on the same tasks with the same seeds, so they are identical and checked to be).
Wall/CPU times are read from /usr/bin/time -v outputs; machine load from `uptime` snapshots.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

from fastadapt.core.types import Row
from fastadapt.eval.plots import plot_rows

HERE = Path(__file__).resolve().parent
CONFIGS = {"maml-trpo-navigation2d": "maml-trpo", "promp-navigation2d": "promp",
           "reptile-rl-navigation2d": "reptile-rl"}


def parse_time(path: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    if not path.is_file():
        return out
    txt = path.read_text()
    for key, pat in (("user_s", r"User time \(seconds\): ([\d.]+)"), ("sys_s", r"System time \(seconds\): ([\d.]+)")):
        m = re.search(pat, txt)
        if m:
            out[key] = float(m.group(1))
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", txt)
    if m:
        parts = [float(p) for p in m.group(1).split(":")]
        sec = 0.0
        for p in parts:
            sec = sec * 60 + p
        out["wall_s"] = sec
    return out


def load_avg(path: Path) -> float | None:
    if not path.is_file():
        return None
    m = re.search(r"load average: ([\d.]+)", path.read_text())
    return float(m.group(1)) if m else None


def mean_se(xs: list[float]) -> tuple[float, float]:
    n = len(xs)
    m = sum(xs) / n
    if n < 2:
        return m, float("nan")
    var = sum((x - m) ** 2 for x in xs) / (n - 1)
    return m, math.sqrt(var / n)


def main() -> None:
    stage = sys.argv[1] if len(sys.argv) > 1 else "final"
    runs = HERE / (sys.argv[2] if len(sys.argv) > 2 else "runs")
    out_dir = HERE if runs.name == "runs" else runs
    suffix = "" if stage == "final" else f"-{stage}"
    per: dict[tuple[str, int], dict[int, float]] = {}
    task_se: dict[tuple[str, int], list[float]] = {}
    timing: list[dict] = []
    baseline_check: dict[tuple[str, int, int], float] = {}
    for cfg, algo in CONFIGS.items():
        for d in sorted(runs.glob(f"{cfg}-s*")):
            src = d if stage == "final" else d / "at-iter20"
            ev = src / "eval.json"
            if not ev.is_file():
                continue
            seed = int(d.name.rsplit("-s", 1)[1])
            rows = json.loads(ev.read_text())["rows"]
            metrics = [json.loads(x) for x in (src / "metrics.jsonl").read_text().splitlines() if x.strip()]
            last = metrics[-1]
            t_train = parse_time(d / "time-train.txt") or parse_time(d / "time-train-killed.txt")
            if stage == "final" and not (d / "time-train.txt").is_file():
                t2 = parse_time(d / "time-train-resume-20-40.txt")
                t_train = {k: t_train.get(k, 0.0) + t2.get(k, 0.0) for k in set(t_train) | set(t2)}
            t_eval = parse_time(src / "time-eval.txt")
            timing.append({
                "config": cfg, "seed": seed, "iterations": len(metrics), "env_steps": last.get("env_steps"),
                "train_wall_s": t_train.get("wall_s"),
                "train_cpu_s": round(t_train.get("user_s", 0) + t_train.get("sys_s", 0), 1),
                "eval_wall_s": t_eval.get("wall_s"),
                "eval_cpu_s": round(t_eval.get("user_s", 0) + t_eval.get("sys_s", 0), 1),
                "load_start": load_avg(d / "load-start.txt"),
                "load_after_eval": load_avg(src / "load-after-eval.txt"),
                "final_post_return_train": last.get("post_return"),
            })
            for r in rows:
                m, k = r["method"], int(r["setting"]["adapt_steps"])
                if m in ("pretrained", "random-init", "oracle"):
                    key3 = (m, seed, k)
                    if key3 in baseline_check and abs(baseline_check[key3] - r["mean"]) > 1e-6:
                        print(f"warning: {m} differs between configs at seed {seed} k={k}")
                    baseline_check.setdefault(key3, r["mean"])
                    if (m, k) in per and seed in per[(m, k)]:
                        continue
                per.setdefault((m, k), {})[seed] = float(r["mean"])
                task_se.setdefault((m, k), []).append(float(r["se"]) if r["se"] is not None else float("nan"))
    out_rows: list[Row] = []
    for (m, k), by_seed in sorted(per.items(), key=lambda x: (x[0][0], x[0][1])):
        xs = [by_seed[s] for s in sorted(by_seed)]
        mu, se = mean_se(xs)
        tse = task_se[(m, k)]
        out_rows.append(Row(m, {"adapt_steps": k}, mu, se, len(xs), {
            "per_seed": {str(s): round(by_seed[s], 3) for s in sorted(by_seed)},
            "mean_within_seed_se_over_40_tasks": round(sum(tse) / len(tse), 3),
        }))
    (out_dir / f"results{suffix}.json").write_text(json.dumps({"rows": [r.to_json() for r in out_rows], "timing": timing},
                                                  indent=1))
    lines = ["| method | adapt_steps | mean over seeds | se over seeds | seeds | per seed |", "|---|---|---|---|---|---|"]
    for r in out_rows:
        ps = ", ".join(f"{v:.2f}" for v in r.extra["per_seed"].values())
        lines.append(f"| {r.method} | {r.setting['adapt_steps']} | {r.mean:.2f} | {r.se:.2f} | {r.n} | {ps} |")
    lines += ["", "| config | seed | iterations | env steps | train wall s | train CPU s | eval wall s | eval CPU s |"
              " load (1-min avg) at start | load after eval | last post_return (train) |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for t in timing:
        lines.append("| " + " | ".join(str(t[k]) for k in (
            "config", "seed", "iterations", "env_steps", "train_wall_s", "train_cpu_s", "eval_wall_s",
            "eval_cpu_s", "load_start", "load_after_eval", "final_post_return_train")) + " |")
    (out_dir / f"results{suffix}.md").write_text("\n".join(lines) + "\n")
    if out_rows:
        plot_rows(out_rows, out_dir / f"adaptation_curve{suffix}.png",
                  title="2D navigation: return after k adaptation steps (mean ± se over seeds)",
                  ylabel="return per episode (40 held-out tasks)")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
