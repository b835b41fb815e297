"""Collect benchmarks/snail/runs/snail-bandit-s*/ into results/ (kept in git), results.json, results.md, curves.png.

Each run directory (git-ignored) is made by ``run_snail.sh SEED``; this script copies the small evidence files
(config, metrics.jsonl, eval.json, /usr/bin/time outputs, load) to ``results/s<SEED>/`` and tabulates them next
to the exact Bayes-optimal value (``fastadapt.baselines.bandits.BayesOptimalBandit``) and RL²'s recorded row
(benchmarks/rl2/results.json). The RL² paper has no SNAIL row; Mishra et al. (2018, Table 1) report SNAIL on the
same bandit grid (k=5, n=10: 6.6), quoted here as a labelled reference, never as a result.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

HERE = Path(__file__).parent
KEEP = ["config.yaml", "metrics.jsonl", "eval.json", "summary.json", "time-train.txt", "time-eval.txt",
        "load-start.txt", "load-end.txt"]


def _time(path: Path) -> dict[str, float]:
    text = path.read_text()
    user = float(re.search(r"User time \(seconds\): ([\d.]+)", text).group(1))
    sys_ = float(re.search(r"System time \(seconds\): ([\d.]+)", text).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text).group(1)
    parts = [float(p) for p in wall.split(":")]
    wall_s = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    return {"cpu_s": user + sys_, "wall_s": wall_s}


def main() -> None:
    from fastadapt.baselines.bandits import BayesOptimalBandit

    rows, per_seed = [], []
    for run in sorted((HERE / "runs").glob("snail-bandit-s*")):
        if not (run / "eval.json").exists():
            continue
        seed = int(run.name.rsplit("s", 1)[1])
        dst = HERE / "results" / f"s{seed}"
        dst.mkdir(parents=True, exist_ok=True)
        for name in KEEP:
            if (run / name).exists():
                shutil.copy2(run / name, dst / name)
        ev = json.loads((run / "eval.json").read_text())
        row = ev["rows"][0]
        train, evt = _time(run / "time-train.txt"), _time(run / "time-eval.txt")
        per_seed.append({"seed": seed, "mean": row["mean"], "se": row["se"], "n": row["n"],
                         "train_cpu_s": train["cpu_s"], "train_wall_s": train["wall_s"], "eval_cpu_s": evt["cpu_s"],
                         "env_steps": row.get("train_env_steps"), "iterations": ev["checkpoint_iteration"],
                         "load": (run / "load-start.txt").read_text().split("load average:")[1].strip()})
        rows.append({**row, "seed": seed})
    if not per_seed:
        raise SystemExit("no finished runs under benchmarks/snail/runs/")
    means = [p["mean"] for p in per_seed]
    m = sum(means) / len(means)
    se_seeds = (math.sqrt(sum((x - m) ** 2 for x in means) / (len(means) - 1) / len(means))
                if len(means) > 1 else float("nan"))
    bo = BayesOptimalBandit(5, 10).value
    rl2 = [r for r in json.loads((HERE.parent / "rl2" / "results.json").read_text())["rows"]
           if r.get("method") == "rl2-greedy" and r.get("setting") == {"arms": 5, "pulls": 10}]
    rl2_m = sum(r["mean"] for r in rl2) / len(rl2) if rl2 else float("nan")
    rows.append({"method": "snail", "setting": {"arms": 5, "pulls": 10}, "mean": m, "se": se_seeds,
                 "n": len(means), "aggregate": "mean over seeds; se across seeds"})
    rows.append({"method": "bayes_optimal", "setting": {"arms": 5, "pulls": 10}, "mean": bo, "se": 0.0, "n": 0,
                 "exact": True})
    (HERE / "results.json").write_text(json.dumps({"rows": rows, "per_seed": per_seed}, indent=2) + "\n")
    lines = ["| seed | iterations | env steps | SNAIL total reward per trial (greedy) | test trials | train CPU s (wall s) | start load |",
             "|---|---|---|---|---|---|---|"]
    for p in per_seed:
        lines.append(f"| {p['seed']} | {p['iterations']} | {p['env_steps']:,} | {p['mean']:.3f} ± {p['se']:.3f} | "
                     f"{p['n']:,} | {p['train_cpu_s']:.0f} ({p['train_wall_s']:.0f}) | {p['load']} |")
    lines += ["", f"Mean over {len(means)} seeds: **{m:.3f} ± {se_seeds:.3f}** (se across seeds); exact Bayes-optimal "
              f"{bo:.3f} ({100 * m / bo:.1f}%); RL² (ours, benchmarks/rl2, 3 seeds) {rl2_m:.3f}; "
              "Mishra et al. 2018 report 6.6 for SNAIL (paper, reference only)."]
    (HERE / "results.md").write_text("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for run in sorted((HERE / "results").glob("s*")):
        ms = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
        ax.plot([r["env_steps"] / 1e6 for r in ms], [r["reward_per_trial"] for r in ms], label=f"SNAIL seed {run.name[1:]}")
    ax.axhline(bo, color="k", ls="--", label=f"Bayes-optimal {bo:.3f}")
    ax.set_xlabel("env steps (millions)")
    ax.set_ylabel("training reward per trial (sampled actions)")
    ax.set_title("SNAIL on Bernoulli bandits, k=5, n=10")
    ax.set_ylim(4.5, 7.0)
    ax.legend()
    fig.tight_layout()
    fig.savefig(HERE / "curves.png", dpi=120)


if __name__ == "__main__":
    main()
