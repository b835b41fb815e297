"""Side-by-side timing of glibc's default allocator settings vs ``fastadapt.core.allocator.tune_allocator``.

Each measurement is a fresh subprocess (mallopt must run before the big allocations), modes alternate within
every repeat. Workload: Conv4 (64 channels, channels-last, 1 torch thread) forward + backward + Adam on a batch
of 28x28 images — 360 images is a ProtoNet 60-way 1-shot episode with 5 queries per class, 80 a 5-way task
with 15 queries.

    .venv/bin/python benchmarks/allocator/measure.py --out benchmarks/allocator/results.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
from fastadapt.core.allocator import allocator_state, tune_allocator
mode, batch, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if mode == "tuned":
    tune_allocator(respect_env=False)
import torch
torch.set_num_threads(1)
from fastadapt.nn.backbones import Conv4
g = torch.Generator().manual_seed(0)
net = Conv4(channels_last=True, generator=g)
opt = torch.optim.Adam(net.parameters(), 1e-3)
x = torch.rand(batch, 1, 28, 28, generator=g).contiguous(memory_format=torch.channels_last)
def step():
    loss = net(x).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
for _ in range(5):
    step()
r0 = resource.getrusage(resource.RUSAGE_SELF); t0 = time.perf_counter()
for _ in range(steps):
    step()
wall = time.perf_counter() - t0
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"mode": mode, "state": allocator_state(), "batch": batch, "steps": steps,
                  "it_per_s": steps / wall, "user_s": r1.ru_utime - r0.ru_utime, "sys_s": r1.ru_stime - r0.ru_stime,
                  "minor_faults": r1.ru_minflt - r0.ru_minflt, "peak_rss_mb": r1.ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, nargs="*", default=[360, 80])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    rows = []
    for batch in args.batches:
        steps = max(5, args.steps * 360 // batch)
        for rep in range(args.repeats):
            for mode in ("default", "tuned"):
                out = subprocess.run([sys.executable, "-c", CHILD, mode, str(batch), str(steps)],
                                     capture_output=True, text=True, check=True).stdout
                row = json.loads(out.strip().splitlines()[-1]) | {"repeat": rep, "loadavg": os.getloadavg()[0]}
                print(json.dumps(row), flush=True)
                rows.append(row)
    summary = []
    for batch in args.batches:
        by = {m: [r for r in rows if r["batch"] == batch and r["mode"] == m] for m in ("default", "tuned")}
        ratios = [t["it_per_s"] / d["it_per_s"] for d, t in zip(by["default"], by["tuned"])]
        summary.append({"batch": batch, **{f"{m}_{k}": statistics.mean(r[k] for r in by[m]) for m in by
                                           for k in ("it_per_s", "user_s", "sys_s", "minor_faults", "peak_rss_mb")},
                        "speedup_per_repeat": ratios, "speedup_mean": statistics.mean(ratios)})
    print(json.dumps(summary, indent=1))
    with open(args.out, "w") as f:
        json.dump({"command": " ".join(sys.argv), "rows": rows, "summary": summary}, f, indent=1)


if __name__ == "__main__":
    main()
