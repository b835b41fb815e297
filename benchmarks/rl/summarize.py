"""Collect benchmarks/rl/results/*/ into results.json, results.md and learning-curve PNGs.

    .venv/bin/python benchmarks/rl/summarize.py
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = {"CartPole-v1": (475.0, 100_000), "Pendulum-v1": (-200.0, 20_000)}


def timing_cell(rs: list[dict]) -> str:
    """``s0: 79/14 (10.5-11.2)`` per seed; runs recorded before CPU timing existed show wall time only."""
    parts = []
    for r in rs:
        t = r["timing"]
        if t is None:
            parts.append(f"s{r['seed']}: {r['train_wall_s']:.0f}/- (see command.txt)")
        else:
            parts.append(f"s{r['seed']}: {t['train_wall_s']:.0f}/{t['train_cpu_s']:.0f} "
                         f"({t['load_start']:.1f}-{t['load_end']:.1f})")
    return ", ".join(parts)


def main() -> None:
    runs = sorted(p for p in (HERE / "results").iterdir() if (p / "eval.json").is_file())
    per_cfg: dict[str, list[dict]] = defaultdict(list)
    for run in runs:
        ev = json.loads((run / "eval.json").read_text())
        row = ev["rows"][0]
        metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
        summary = json.loads((run / "summary.json").read_text())
        cfg_name, seed = run.name.rsplit("-s", 1)
        per_cfg[cfg_name].append({
            "run": run.name, "seed": int(seed), "method": row["method"], "env": row["setting"]["env"],
            "eval_mean": row["mean"], "eval_se": row["se"], "episodes": row["n"],
            # interaction budget: training steps + validation-episode steps (DQN model selection), if any
            "env_steps": metrics[-1].get("total_env_steps", metrics[-1]["env_steps"]),
            "train_wall_s": summary["wall_s"],
            "curve": [(m["env_steps"], m.get("episode_return")) for m in metrics if "episode_return" in m],
            "timing": (json.loads((run / "timing.json").read_text()) if (run / "timing.json").is_file()
                       else None),
        })
    lines = ["| config | method | env | seeds | eval return per seed (20 episodes each) | mean over seeds | "
             "min | env steps (max over seeds) | target | met by | train wall s / CPU s (load start-end) per seed |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    out_rows = []
    for cfg_name, rs in sorted(per_cfg.items()):
        rs.sort(key=lambda r: r["seed"])
        vals = [r["eval_mean"] for r in rs]
        mean = sum(vals) / len(vals)
        se = (math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) / math.sqrt(len(vals))
              if len(vals) > 1 else None)
        env = rs[0]["env"]
        tgt = TARGETS.get(env)
        met = (f"{sum(r['eval_mean'] >= tgt[0] and r['env_steps'] <= tgt[1] for r in rs)}/{len(vals)} seeds"
               if tgt else "-")
        per_seed = ", ".join(f"s{r['seed']}: {r['eval_mean']:.1f}" for r in rs)
        lines.append(
            f"| {cfg_name} | {rs[0]['method']} | {env} | {len(rs)} | {per_seed} | {mean:.1f}"
            f"{f' ± {se:.1f}' if se is not None else ''} | {min(vals):.1f} | {int(max(r['env_steps'] for r in rs))} | "
            f"{f'>= {tgt[0]:g} within {tgt[1]} steps' if tgt else '-'} | {met} | {timing_cell(rs)} |"
        )
        out_rows.append({"method": rs[0]["method"], "setting": {"env": env, "config": cfg_name},
                         "mean": mean, "se": se, "n": len(vals),
                         "per_seed": {str(r["seed"]): r["eval_mean"] for r in rs},
                         "env_steps": max(r["env_steps"] for r in rs),
                         "train_wall_s": {str(r["seed"]): r["train_wall_s"] for r in rs},
                         "timing": {str(r["seed"]): r["timing"] for r in rs}})
    (HERE / "results.json").write_text(json.dumps({"rows": out_rows}, indent=2) + "\n")
    (HERE / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    for env in sorted({r["env"] for rs in per_cfg.values() for r in rs}):
        fig, ax = plt.subplots(figsize=(7, 4))
        for i, (cfg_name, rs) in enumerate(sorted(per_cfg.items())):
            if rs[0]["env"] != env:
                continue
            for j, r in enumerate(rs):
                xs = [c[0] for c in r["curve"]]
                ys = [c[1] for c in r["curve"]]
                ax.plot(xs, ys, color=f"C{i}", alpha=0.8, label=cfg_name if j == 0 else None)
        if env in TARGETS:
            ax.axhline(TARGETS[env][0], color="k", ls="--", lw=0.8, label="target")
        ax.set_xlabel("env steps")
        ax.set_ylabel("training episode return (mean of last 20)")
        ax.set_title(env)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(HERE / f"curves-{env.replace('/', '_')}.png", dpi=110)
        plt.close(fig)


if __name__ == "__main__":
    main()
