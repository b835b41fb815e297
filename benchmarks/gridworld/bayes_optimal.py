"""Exact Bayes-optimal policy of VariBAD's 5x5 gridworld (fastadapt.baselines.gridworld.solve) -> JSON.

Usage: .venv/bin/python benchmarks/gridworld/bayes_optimal.py benchmarks/gridworld/bayes_optimal.json
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

from fastadapt.baselines.gridworld import solve

res = solve()
ru = resource.getrusage(resource.RUSAGE_SELF)
out = {
    "rows": [r.to_json() for r in res.rows()],
    "value": res.value,
    "episode_means": res.episode_means,
    "plan": res.plan,
    "per_goal": {f"{g[0]},{g[1]}": v for g, v in res.per_goal.items()},
    "wall_s": round(res.wall_s, 1),
    "cpu_s": round(ru.ru_utime + ru.ru_stime, 1),
    "max_rss_mb": round(ru.ru_maxrss / 1024),
}
Path(sys.argv[1]).write_text(json.dumps(out, indent=1))
print(json.dumps({k: out[k] for k in ("value", "episode_means", "plan", "wall_s", "cpu_s")}))
