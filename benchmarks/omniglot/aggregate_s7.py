"""Tables for the session-7 README section from eval_runs.py's JSON and the runs' result.json files.

    .venv/bin/python benchmarks/omniglot/aggregate_s7.py benchmarks/omniglot/results/s7_eval.json
"""

from __future__ import annotations

import json
import statistics as st
import sys
from pathlib import Path


def mean_se(v: list[float]) -> str:
    m = st.mean(v)
    se = st.stdev(v) / len(v) ** 0.5 if len(v) > 1 else float("nan")
    return f"{100 * m:.1f} ± {100 * se:.1f}"


def main() -> None:
    data = json.loads(Path(sys.argv[1]).read_text())
    rows = data["rows"]
    official = data["runs"][0]
    models = [Path(m).name for m in data["models"]]
    variants = ["plain", "tta4", "balanced", "tta4+balanced"]
    print("| variant | " + " | ".join(models) + " | mean ± se over seeds | same, pooled 100 runs (5 builds) |")
    print("|---|" + "---|" * (len(models) + 2))
    for v in variants:
        off = [next(r["error"] for r in rows if r["model"] == m and r["runs"] == official and r["variant"] == v)
               for m in models]
        pooled = [st.mean(r["error"] for r in rows if r["model"] == m and r["variant"] == v) for m in models]
        cells = " | ".join(f"{100 * e:.2f}%" for e in off)
        print(f"| {v} | {cells} | {mean_se(off)}% | {mean_se(pooled)}% |")
    for r in rows:
        if r["model"].startswith("ensemble") and r["runs"] == official:
            pooled = st.mean(x["error"] for x in rows if x["model"] == r["model"] and x["variant"] == r["variant"])
            print(f"| ensemble of the {len(models)} seeds, {r['variant']} | {100 * r['error']:.2f}% on the official"
                  f" set, {r.get('error_by_alphabet')} | pooled 100 runs: {100 * pooled:.2f}% |")
    print()
    print("| seed | iterations | train CPU s | train wall s | 5w1s | 5w5s | 20w1s | 20w5s | runs error (run_omniglot) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m in data["models"]:
        res = json.loads((Path(m) / "result.json").read_text())
        cells = {}
        for row in res["rows"]:
            s = row["setting"]
            if s.get("protocol"):
                cells["runs"] = f"{100 * (1 - row['mean']):.2f}%"
            else:
                cells[f"{s['way']}w{s['shot']}s"] = f"{row['mean']:.3f} ± {row['ci95_halfwidth']:.3f}"
        print(f"| {res['seed']} | {res['iterations']} | {res['train_cpu_s']} | {res['train_wall_s']} | "
              + " | ".join(cells.get(k, "") for k in ("5w1s", "5w5s", "20w1s", "20w5s", "runs")) + " |")


if __name__ == "__main__":
    main()
