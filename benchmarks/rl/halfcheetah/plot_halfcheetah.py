"""Learning curve(s) of the HalfCheetah-v5 runs in this folder -> curve.json + curve.png.

    .venv/bin/python benchmarks/rl/halfcheetah/plot_halfcheetah.py

Each run folder (CONFIG-sSEED/, written by ../run_rl_bench.py --dest benchmarks/rl/halfcheetah) holds the
trainer's metrics.jsonl (training return = mean of the last 20 finished episodes, one point per iteration),
eval.json (20 deterministic episodes after training) and timing.json (wall/CPU seconds, load).
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    runs = []
    for run in sorted(p for p in HERE.iterdir() if (p / "eval.json").is_file()):
        metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
        row = json.loads((run / "eval.json").read_text())["rows"][0]
        timing = json.loads((run / "timing.json").read_text()) if (run / "timing.json").is_file() else None
        runs.append({
            "run": run.name, "method": row["method"], "env": row["setting"]["env"],
            "final_eval_mean": row["mean"], "final_eval_se": row["se"], "eval_episodes": row["n"],
            "env_steps": metrics[-1]["env_steps"], "timing": timing,
            "curve": {"env_steps": [m["env_steps"] for m in metrics if "episode_return" in m],
                      "train_return": [m["episode_return"] for m in metrics if "episode_return" in m]},
        })
    (HERE / "curve.json").write_text(json.dumps({"runs": runs}, indent=1) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for i, r in enumerate(runs):
        ax.plot(r["curve"]["env_steps"], r["curve"]["train_return"], color=f"C{i}",
                label=f"{r['run']} (train return, last 20 episodes)")
        ax.errorbar([r["env_steps"]], [r["final_eval_mean"]], yerr=[r["final_eval_se"]], fmt="o", color=f"C{i}",
                    label=f"{r['run']} final eval, 20 episodes: {r['final_eval_mean']:.0f}")
    ax.set_xlabel("env steps")
    ax.set_ylabel("episode return")
    ax.set_title("HalfCheetah-v5")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(HERE / "curve.png", dpi=110)
    plt.close(fig)
    for r in runs:
        print(r["run"], r["env_steps"], round(r["final_eval_mean"], 1), r["timing"])


if __name__ == "__main__":
    main()
