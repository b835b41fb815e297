"""Aggregate the HalfCheetah-Dir/-Vel MAML-TRPO runs over seeds: halfcheetah-results.{json,md} and one
adaptation-curve plot per task (mean ± se over seeds).

Usage: .venv/bin/python benchmarks/maml-rl/aggregate_halfcheetah.py

Reads the tracked evidence folders ``halfcheetah-<task>-s<seed>/`` (copies of the run folders without their
checkpoints: eval-rows.json, metrics.jsonl, time-*.txt, load-*.txt). For every (task, method, adapt_steps) the
per-seed value is that seed's eval mean (return per episode averaged over its 20 held-out tasks); the table gives
the mean over seeds, the standard error over seeds and each seed's value, next to the MAML paper's figure.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from aggregate import load_avg, mean_se, parse_time

from fastadapt.core.types import Row
from fastadapt.eval.plots import plot_rows

HERE = Path(__file__).resolve().parent
# Finn et al. 2017, fig. 5 (40 test tasks): the target, never a result of this library.
PAPER = {"dir": {"maml-trpo": [-50.7, 293.2, 313.5, 315.7], "pretrained": [-43.0, None, None, 19.6]},
         "vel": {"maml-trpo": [-129.5, -78.6, -66.6, -60.8]}}


def main() -> None:
    report: dict[str, dict] = {}
    lines: list[str] = []
    for task in ("dir", "vel"):
        per: dict[tuple[str, int], dict[int, float]] = {}
        timing = []
        for d in sorted(HERE.glob(f"halfcheetah-{task}-s*")):
            ev = d / "eval-rows.json"
            if not d.is_dir() or not ev.is_file():
                continue
            seed = int(d.name.rsplit("-s", 1)[1])
            data = json.loads(ev.read_text())
            for r in data["rows"]:
                per.setdefault((r["method"], int(r["setting"]["adapt_steps"])), {})[seed] = float(r["mean"])
            metrics = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines() if x.strip()]
            t_train, t_eval = parse_time(d / "time-train.txt"), parse_time(d / "time-eval.txt")
            timing.append({
                "seed": seed, "iterations": metrics[-1]["iteration"], "env_steps": metrics[-1]["env_steps"],
                "checkpoint_iteration": data["checkpoint_iteration"],
                "train_cpu_s": round(t_train.get("user_s", 0) + t_train.get("sys_s", 0), 1),
                "train_wall_s": t_train.get("wall_s"),
                "eval_cpu_s": round(t_eval.get("user_s", 0) + t_eval.get("sys_s", 0), 1),
                "load_start": load_avg(d / "load-start.txt"), "load_end": load_avg(d / "load-end.txt"),
            })
        if not per:
            continue
        rows: list[Row] = []
        for (m, k), by_seed in sorted(per.items()):
            xs = [by_seed[s] for s in sorted(by_seed)]
            mu, se = mean_se(xs)
            rows.append(Row(m, {"adapt_steps": k}, mu, se, len(xs),
                            {"per_seed": {str(s): round(by_seed[s], 2) for s in sorted(by_seed)}}))
        report[task] = {"rows": [r.to_json() for r in rows], "timing": timing, "paper": PAPER[task]}
        lines += [f"## HalfCheetah-{task.capitalize()}", "",
                  "| method | k | mean over seeds | se over seeds | seeds | per seed | paper |", "|---|---|---|---|---|---|---|"]
        for r in rows:
            k = r.setting["adapt_steps"]
            paper = PAPER[task].get(r.method, [None] * 4)[k]
            ps = ", ".join(f"{v:.1f}" for v in r.extra["per_seed"].values())
            lines.append(f"| {r.method} | {k} | {r.mean:.1f} | {r.se:.1f} | {r.n} | {ps} | "
                         f"{'' if paper is None else paper} |")
        lines += ["", "| seed | meta-iterations | env steps | checkpoint evaluated | train CPU s | train wall s | "
                  "eval CPU s | load at start / end |", "|---|---|---|---|---|---|---|---|"]
        for t in timing:
            lines.append(f"| {t['seed']} | {t['iterations']} | {t['env_steps']:.3g} | {t['checkpoint_iteration']} | "
                         f"{t['train_cpu_s']} | {t['train_wall_s']} | {t['eval_cpu_s']} | "
                         f"{t['load_start']} / {t['load_end']} |")
        lines.append("")
        plot_rows(rows, HERE / f"halfcheetah-{task}-seeds.png",
                  title=f"HalfCheetah-{task.capitalize()}: return after k inner steps "
                        f"(± se, {max(r.n for r in rows)} seeds)",
                  ylabel="return per episode (20 held-out tasks)")
    (HERE / "halfcheetah-results.json").write_text(json.dumps(report, indent=1) + "\n")
    (HERE / "halfcheetah-results.md").write_text("\n".join(lines))
    print("\n".join(lines))
    if not report:
        sys.exit("no halfcheetah-<task>-s<seed>/eval-rows.json found")


if __name__ == "__main__":
    main()
