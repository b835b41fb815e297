"""Reference: return of a policy that never moves, on the same 40 held-out dense goals as the meta-test
(eval seed 1000, horizon 20). Writes benchmarks/pearl/stay_baseline.json."""

import json
from pathlib import Path

import numpy as np

from fastadapt.core.seeding import np_rng
from fastadapt.tasks.rl.navigation2d import Navigation2D, Navigation2DConfig

dist = Navigation2D(Navigation2DConfig(horizon=20))
rng = np_rng(1000, "pearl-eval")  # the stream PEARL.evaluate draws its test tasks from
tasks = dist.sample(40, int(rng.integers(2**31 - 1)), "test")
g = np.array([t.goal for t in tasks])
ret = -20 * np.linalg.norm(g, axis=1)
out = {"method": "stay-at-origin", "setting": {"config": "pearl-navigation2d"}, "mean": float(ret.mean()),
       "se": float(ret.std(ddof=1) / np.sqrt(len(ret))), "n": len(ret),
       "oracle_mean": float(dist.oracle_returns(tasks).mean())}
Path(__file__).with_name("stay_baseline.json").write_text(json.dumps(out, indent=1))
print(out)
