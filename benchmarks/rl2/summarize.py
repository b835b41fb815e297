"""Collect benchmarks/rl2/results/*.json into results.json, README table rows and a PNG.

Bayes-optimal values are computed here exactly (fastadapt.baselines.bandits.BayesOptimalBandit) where the
DP fits; the RL² paper's row (Duan et al. 2016, Table 1/2, via REFERENCES.md) is shown as a labelled
reference, never as a result.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).parent
PAPER_BANDIT = {(5, 10): 6.7, (10, 10): 6.7, (50, 10): 6.8, (5, 100): 78.7, (10, 100): 83.5, (50, 100): 84.9}
PAPER_MDP = {10: 156.2, 25: 445.7, 50: 936.1}


def bayes_optimal(arms: int, pulls: int) -> float | None:
    from fastadapt.baselines.bandits import BayesOptimalBandit, NotComputable

    try:
        return BayesOptimalBandit(arms, pulls).value
    except NotComputable:
        return None


def main() -> None:
    runs = [json.loads(p.read_text()) for p in sorted((HERE / "results").glob("*.json"))]
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in runs:
        for row in r["rows"]:
            key = (r["task"], tuple(sorted(row["setting"].items())), row["method"], r["iterations"],
                   json.dumps(r["algo"], sort_keys=True))
            groups[key].append({**row, "seed": r["seed"], "train_cpu_s": r["train_cpu_s"],
                                "planned": r.get("planned_iterations", r["iterations"]),
                                "early": r.get("stopped_early_at_deadline", False),
                                "train_wall_s": r["train_wall_s"], "variant": _variant(r["algo"])})
    lines = ["| task | setting | method | variant | iterations | seeds | mean ± se per seed | mean over seeds "
             "(± se across seeds) | test trials per seed | train CPU s (wall s) | Bayes-optimal (exact) | "
             "paper RL² |", "|" + "---|" * 12]
    out_rows = []
    for key in sorted(groups):
        task, setting, method, iters, _ = key
        g = sorted(groups[key], key=lambda d: d["seed"])
        s = dict(setting)
        means = [d["mean"] for d in g]
        m = sum(means) / len(means)
        se_seeds = (math.sqrt(sum((x - m) ** 2 for x in means) / (len(means) - 1) / len(means))
                    if len(means) > 1 else float("nan"))
        if task == "bandit":
            bo = bayes_optimal(s["arms"], s["pulls"])
            paper = PAPER_BANDIT.get((s["arms"], s["pulls"]))
            sset = f"k={s['arms']}, n={s['pulls']}"
        else:
            bo, paper = None, PAPER_MDP.get(s["episodes"])
            sset = f"n={s['episodes']} episodes"
        per_seed = ", ".join(f"s{d['seed']}: {d['mean']:.3f} ± {d['se']:.3f}" for d in g)
        cpu = ", ".join(f"{d['train_cpu_s']:.0f} ({d['train_wall_s']:.0f})" for d in g)
        lines.append(
            f"| {task} | {sset} | {method} | {g[0]['variant']} | {iters}"
            + (f" of {g[0]['planned']} (deadline)" if g[0]["early"] else "")
            + f" | {len(g)} | {per_seed} | {m:.3f}"
            + (f" ± {se_seeds:.3f}" if se_seeds == se_seeds else "")
            + f" | {g[0]['n']} | {cpu} | {'' if bo is None else f'{bo:.3f}'} | {'' if paper is None else paper} |"
        )
        out_rows.append({"method": method, "setting": s, "mean": m, "se": se_seeds if len(g) > 1 else g[0]["se"],
                         "n": sum(d["n"] for d in g), "seeds": [d["seed"] for d in g], "per_seed": g,
                         "iterations": iters, "variant": g[0]["variant"], "bayes_optimal": bo,
                         "paper_rl2_reference": paper})
    (HERE / "results.json").write_text(json.dumps({"rows": out_rows}, indent=1) + "\n")
    (HERE / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    _plot(runs)


def _variant(algo: dict) -> str:
    priv = algo.get("critic_task_info") or algo.get("learning_reward") == "expected"
    return "privileged-critic" if priv else "plain"


def _plot(runs: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tags = sorted({r["tag"].rsplit("-s", 1)[0] for r in runs})
    fig, axes = plt.subplots(1, len(tags), figsize=(4.5 * len(tags), 3.5), squeeze=False)
    for ax, tag in zip(axes[0], tags):
        for r in runs:
            if r["tag"].rsplit("-s", 1)[0] != tag:
                continue
            xs = [c["cpu_s"] for c in r["curve"]]
            ys = [c["reward_per_trial"] for c in r["curve"]]
            ax.plot(xs, ys, lw=1, label=f"seed {r['seed']} ({_variant(r['algo'])})")
        if tag.startswith("bandit"):
            k, n = tag.split("-")[1][1:], tag.split("-")[2][1:]
            bo = bayes_optimal(int(k), int(n))
            if bo is not None:
                ax.axhline(bo, color="k", ls="--", lw=1, label=f"Bayes-optimal {bo:.3f}")
        ax.set_title(tag)
        ax.set_xlabel("training CPU seconds")
        ax.set_ylabel("reward per trial (training batch, sampled)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(HERE / "curves.png", dpi=110)


if __name__ == "__main__":
    main()
