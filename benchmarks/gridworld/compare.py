"""Gridworld table: VariBAD (and RL²) return per episode of a 4-episode trial next to the exact Bayes-optimal.

Usage (from the repo root):

    .venv/bin/python benchmarks/gridworld/compare.py --bayes benchmarks/gridworld/bayes_optimal.json \
        --group LABEL EVAL_JSON [EVAL_JSON ...] [--group ...] [--rl2 RUN_DIR ...] --out benchmarks/gridworld

* ``--bayes``: the JSON written by ``bayes_optimal.py`` (exact DP, computed once).
* ``--group LABEL FILES``: files written by ``fastadapt eval RUN_DIR --json F`` (one per seed; rows per
  episode on held-out trials), shown as method ``LABEL``: per seed, and the mean over seeds.
* RL²'s own ``evaluate`` reports only the trial total, so its per-episode returns are computed here from
  ``RL2.rollout`` (public API) on test-split tasks of the run's task distribution.

Writes ``results.json`` (rows: per seed and the mean over seeds), ``results.md`` and ``results.png``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch


def _eval_rows(path: Path, label: str) -> list[dict]:
    rows = json.loads(path.read_text())["rows"]
    return [r | {"method": label, "run": path.name} for r in rows]


@torch.no_grad()
def _rl2_rows(run: Path, trials: int, seed: int = 0, batch: int = 1000) -> list[dict]:
    from fastadapt.core.seeding import np_rng, torch_gen
    from fastadapt.experiment.runner import load_run

    cfg, learner, it = load_run(run)
    greedy = bool(cfg.raw.get("eval", {}).get("greedy", False))
    rng, gen = np_rng(seed, "gridworld-bench-rl2"), torch_gen(seed, "gridworld-bench-rl2-actions")
    rets, done = [], 0
    while done < trials:
        n = min(batch, trials - done)
        env = learner.task.batched_env(n, 1)
        tasks = learner.task.sample(n, int(rng.integers(2**31 - 1)), "test")
        out = learner.rollout(env, tasks, int(rng.integers(2**31 - 10)), gen, greedy, False)
        rets.append(out["rewards"].reshape(n, learner.episodes, learner.horizon).sum(-1).double())
        done += n
    r = torch.cat(rets)
    rows = []
    for i in range(r.shape[1]):
        rows.append({"method": "rl2", "setting": {"episode": i + 1}, "mean": float(r[:, i].mean()),
                     "se": float(r[:, i].std() / math.sqrt(len(r))), "n": len(r), "run": str(run),
                     "greedy": greedy, "checkpoint_iteration": it})
    tot = r.sum(1)
    rows.append({"method": "rl2", "setting": {"episodes": int(r.shape[1])}, "mean": float(tot.mean()),
                 "se": float(tot.std() / math.sqrt(len(r))), "n": len(r), "run": str(run), "greedy": greedy,
                 "checkpoint_iteration": it})
    return rows


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
    ap.add_argument("--rl2", type=Path, nargs="*", default=[])
    ap.add_argument("--trials", type=int, default=2000)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    bayes = json.loads(a.bayes.read_text())
    rows: list[dict] = list(bayes["rows"])
    seed_rows: list[dict] = []
    labels = []
    for label, *files in a.group:
        labels.append(label)
        for f in files:
            seed_rows += _eval_rows(Path(f), label)
    for run in a.rl2:
        seed_rows += _rl2_rows(run, a.trials)
    if a.rl2:
        labels.append("rl2")
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
        ys = [next((r for r in rows if r["method"] == m and r["setting"] == {"episode": e}), None) for e in eps]
        if any(y is None for y in ys):
            continue
        ax.errorbar(eps, [y["mean"] for y in ys], yerr=[1.96 * (y["se"] or 0) for y in ys], marker="o", label=m,
                    capsize=3, linestyle="--" if m == "bayes_optimal" else "-")
    ax.set_xlabel("episode of the trial")
    ax.set_ylabel("return per episode")
    ax.set_xticks(eps)
    ax.set_title("Gridworld 5x5 (VariBAD): return per episode, held-out trials")
    ax.legend()
    fig.tight_layout()
    fig.savefig(a.out / "results.png", dpi=120)


if __name__ == "__main__":
    main()
