"""Training curves of the VariBAD gridworld runs (return per episode of the trials collected at each iteration,
smoothed over 25 iterations) against the exact Bayes-optimal per-episode returns.

Usage: .venv/bin/python benchmarks/gridworld/plot_curves.py benchmarks/gridworld/bayes_optimal.json OUT.png \
           METRICS.jsonl [METRICS.jsonl ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

bayes = json.loads(Path(sys.argv[1]).read_text())["episode_means"]
fig, axes = plt.subplots(1, 4, figsize=(14, 3.4), sharey=True)
for path in sys.argv[3:]:
    recs = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    steps = np.array([r["env_steps"] for r in recs]) / 1e6
    for i, ax in enumerate(axes):
        y = np.array([r[f"return_ep{i + 1}"] for r in recs])
        k = 25
        ys = np.convolve(y, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1 :], ys, lw=1, label=Path(path).name.split(".")[0])
for i, ax in enumerate(axes):
    ax.axhline(bayes[i], color="k", ls="--", lw=1, label="Bayes-optimal (exact)")
    ax.set_title(f"episode {i + 1}")
    ax.set_xlabel("env steps (M)")
axes[0].set_ylabel("return (train batch, 25-it. mean)")
axes[-1].legend(fontsize=7)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
