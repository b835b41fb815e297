"""How wrong was the trust-region's quadratic KL model? For every meta-iteration of a MAML-TRPO run,
``kl / kl_model`` with ``kl_model = max_kl * step_frac^2`` (the step is scaled so that the quadratic model
``1/2 s^T H s`` equals max_kl at step_frac 1). Prints the median and max per block of iterations, and the
pre-/post-update returns at the block's end.

usage: kl_model_ratio.py RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

MAX_KL = 0.01

for run in sys.argv[1:]:
    rows = [json.loads(x) for x in (Path(run) / "metrics.jsonl").read_text().splitlines() if x.strip()]
    for lo, hi in ((1, 10), (11, 20), (21, 30), (31, 40)):
        blk = [r for r in rows if lo <= r["iteration"] <= hi and r["step_frac"] > 0]
        if not blk:
            continue
        ratios = [r["kl"] / (MAX_KL * r["step_frac"] ** 2) for r in blk]
        fr = [r["step_frac"] for r in blk]
        print(f"{Path(run).parent.name}/{Path(run).name} it {lo:2d}-{hi:2d}: kl/kl_model median "
              f"{statistics.median(ratios):7.2f} max {max(ratios):7.2f}; step_frac median {statistics.median(fr):.3f}"
              f"; at it {blk[-1]['iteration']}: pre {blk[-1]['pre_return']:.1f} post {blk[-1]['post_return']:.1f}")
