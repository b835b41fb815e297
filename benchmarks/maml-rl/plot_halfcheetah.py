"""Training curve of a HalfCheetah-Dir/-Vel MAML-TRPO run: pre-/post-update mean return per meta-iteration.

Usage: .venv/bin/python benchmarks/maml-rl/plot_halfcheetah.py RUN_DIR OUT.png [--summary]
Reads RUN_DIR/metrics.jsonl (one JSON line per meta-iteration: iteration, env_steps, pre_return,
post_return, ...). Plots the raw per-iteration values (thin) and a 10-iteration moving average (thick).
With --summary also prints 10-iteration block means of pre/post return and their difference.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def load(run: Path) -> dict[str, np.ndarray]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return {k: np.array([r[k] for r in rows], dtype=float) for k in ("iteration", "env_steps", "pre_return",
                                                                     "post_return")}


def moving(x: np.ndarray, w: int) -> np.ndarray:
    """Trailing moving average (shorter window at the start)."""
    c = np.cumsum(np.insert(x, 0, 0.0))
    out = np.empty_like(x)
    for i in range(len(x)):
        lo = max(0, i + 1 - w)
        out[i] = (c[i + 1] - c[lo]) / (i + 1 - lo)
    return out


def main() -> None:
    run, out = Path(sys.argv[1]), Path(sys.argv[2])
    m = load(run)
    it = m["iteration"]
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for key, colour, label in (("pre_return", "tab:blue", "pre-update (0 steps)"),
                               ("post_return", "tab:orange", "post-update (1 step)")):
        ax.plot(it, m[key], color=colour, alpha=0.3, lw=0.8)
        ax.plot(it, moving(m[key], 10), color=colour, lw=2, label=f"{label}, 10-it. moving avg")
    ax.set_xlabel("meta-iteration (10 tasks x 20 episodes x 200 steps, pre + post)")
    ax.set_ylabel("mean return per episode (meta-train tasks)")
    ax.set_title(f"MAML-TRPO {run.name}: {int(it[-1])} meta-iterations, "
                 f"{m['env_steps'][-1] / 1e6:.1f} M env steps")
    ax.axhline(0.0, color="grey", lw=0.5)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")
    if "--summary" in sys.argv:
        print("iterations | env steps (M, end) | pre | post | post - pre")
        for lo in range(0, len(it), 10):
            sl = slice(lo, lo + 10)
            pre, post = m["pre_return"][sl].mean(), m["post_return"][sl].mean()
            print(f"{int(it[sl][0])}-{int(it[sl][-1])} | {m['env_steps'][sl][-1] / 1e6:.2f} | {pre:.1f} | "
                  f"{post:.1f} | {post - pre:+.1f}")


if __name__ == "__main__":
    main()
