"""Compare a bench results.json with the paper's reference columns stored in it.

Usage: python benchmarks/bandits/compare.py RESULTS.json [RESULTS.json ...] > comparison.md

For every row whose method has a "<method> (paper)" reference in the same setting, prints ours ± se, the
paper's value, the difference and the difference in units of our standard error. The paper's values are
rounded to one decimal, so |z| also contains up to 0.05/se of rounding.
"""

from __future__ import annotations

import json
import sys


def main(paths: list[str]) -> None:
    print("| setting | method | ours ± se | paper | ours - paper | (ours - paper) / se |")
    print("|---|---|---|---|---|---|")
    for path in paths:
        data = json.load(open(path))
        refs = {(r["method"], json.dumps(r["setting"], sort_keys=True)): r["mean"] for r in data.get("references", [])}
        for r in data["rows"]:
            key = (f"{r['method']} (paper)", json.dumps(r["setting"], sort_keys=True))
            if key not in refs:
                continue
            paper = refs[key]
            diff = r["mean"] - paper
            z = diff / r["se"] if r["se"] else float("nan")
            setting = ", ".join(f"{k}={v}" for k, v in r["setting"].items())
            print(f"| {setting} | {r['method']} | {r['mean']:.3f} ± {r['se']:.3f} | {paper} | {diff:+.3f} | {z:+.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
