"""Training curves of the RL² gridworld runs: total reward per trial of the 256 trials collected at each
iteration (sampled actions, smoothed over 10 iterations) against the exact Bayes-optimal 37.21.

Usage: .venv/bin/python benchmarks/gridworld/plot_rl2_curves.py benchmarks/gridworld/bayes_optimal.json OUT.png \
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

bayes = json.loads(Path(sys.argv[1]).read_text())
total = next(r["mean"] for r in bayes["rows"] if r["setting"] == {"episodes": 4})
fig, ax = plt.subplots(figsize=(6, 4))
k = 10
for path in sys.argv[3:]:
    recs = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    steps = np.array([r["env_steps"] for r in recs]) / 1e6
    y = np.array([r["reward_per_trial"] for r in recs])
    ax.plot(steps[k - 1 :], np.convolve(y, np.ones(k) / k, mode="valid"), lw=1, label=Path(path).name.split(".")[0])
ax.axhline(total, color="k", ls="--", lw=1, label=f"Bayes-optimal (exact) {total:.2f}")
ax.set_xlabel("env steps (M)")
ax.set_ylabel("reward per trial (train batch, 10-it. mean)")
ax.set_title("RL² on the 5x5 gridworld (4 episodes x 15 steps per trial)")
ax.set_ylim(bottom=max(ax.get_ylim()[0], -10))
ax.legend(fontsize=7)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
