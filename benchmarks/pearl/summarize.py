"""Aggregate benchmarks/pearl/runs/*.json into results.json / results.md / results.png.

For every config and eval point (iteration), per method and context_episodes: the mean over seeds of the
per-seed mean return over held-out tasks, the standard error over seeds, and the per-seed values (each with
its own standard error over tasks in the run JSON).
Usage: python benchmarks/pearl/summarize.py [RUN_DIR]
"""

from __future__ import annotations

import json
import math
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).parent


def main() -> None:
    run_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "runs"
    runs = [json.loads(p.read_text()) for p in sorted(run_dir.glob("*.json"))]
    cells: dict[tuple, list[tuple[int, float, float]]] = defaultdict(list)
    times = []
    for r in runs:
        times.append(r)
        for ev in r["evals"]:
            for row in ev["rows"]:
                key = (r["config"], ev["iteration"], row["method"], row["setting"]["context_episodes"])
                cells[key].append((r["seed"], row["mean"], row["se"]))
            for row in ev.get("rows_stochastic_actions") or []:
                if row["method"] == "oracle":
                    continue
                key = (r["config"], ev["iteration"], row["method"] + " (sampled actions)", row["setting"]["context_episodes"])
                cells[key].append((r["seed"], row["mean"], row["se"]))
    out_rows = []
    md = ["| config | iteration | method | context_episodes | mean over seeds | se over seeds | seeds | per seed (mean ± se over tasks) |",
          "|---|---|---|---|---|---|---|---|"]
    for key in sorted(cells):
        vals = sorted(cells[key])
        ms = [v[1] for v in vals]
        n = len(ms)
        mean = sum(ms) / n
        se = math.sqrt(sum((m - mean) ** 2 for m in ms) / (n - 1) / n) if n > 1 else float("nan")
        cfg, it, method, k = key
        out_rows.append({"method": method, "setting": {"config": cfg, "iteration": it, "context_episodes": k},
                         "mean": mean, "se": se if n > 1 else None, "n": n,
                         "per_seed": {str(s): [m, e] for s, m, e in vals}})
        per = ", ".join(f"s{s}: {m:.2f} ± {e:.2f}" for s, m, e in vals)
        md.append(f"| {cfg} | {it} | {method} | {k} | {mean:.2f} | {se:.2f} | {n} | {per} |")
    md += ["", "| config | seed | iterations | env steps | grad steps | train wall s | train CPU s | total wall s | total CPU s | load start | load end |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in times:
        last = r["metrics"][-1]
        md.append(f"| {r['config']} | {r['seed']} | {r['iterations']} | {int(last['env_steps'])} | {int(last['grad_steps'])} | "
                  f"{r['train_wall_s']} | {r['train_cpu_s']} | {r['total_wall_s']} | {r['total_cpu_s']} | "
                  f"{r['load_start']:.1f} | {r['load_end']:.1f} |")
    (HERE / "results.json").write_text(json.dumps({"rows": out_rows}, indent=1))
    (HERE / "results.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        configs = sorted({k[0] for k in cells})
        fig, axes = plt.subplots(1, len(configs), figsize=(6 * len(configs), 4.2), squeeze=False)
        for ax, cfg in zip(axes[0], configs):
            last_it = max(k[1] for k in cells if k[0] == cfg)
            for method in ("pearl", "prior", "oracle"):
                ks = sorted(k[3] for k in cells if k[0] == cfg and k[1] == last_it and k[2] == method)
                if not ks:
                    continue
                rows = [next(r for r in out_rows if r["method"] == method and r["setting"] == {"config": cfg, "iteration": last_it, "context_episodes": k}) for k in ks]
                ax.errorbar(ks, [r["mean"] for r in rows], yerr=[r["se"] or 0 for r in rows], marker="o", capsize=3, label=method)
            ax.set_title(f"{cfg} (iteration {last_it}, held-out tasks)")
            ax.set_xlabel("context episodes")
            ax.set_ylabel("return per episode")
            ax.set_xticks(ks)
            ax.legend()
        fig.tight_layout()
        fig.savefig(HERE / "results.png", dpi=110)
    except Exception as e:  # plotting is optional
        print("plot failed:", e)


if __name__ == "__main__":
    main()
