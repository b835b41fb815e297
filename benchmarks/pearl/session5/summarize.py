"""Summarise the session-5 runs: python benchmarks/pearl/session5/summarize.py [RUN_DIR ...]
-> benchmarks/pearl/session5/results.md and results.json (per seed: mean ± task-level se; over seeds: mean ± se
over seeds), deterministic (policy mean) and sampled-action rows, at every evaluated iteration."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main() -> None:
    dirs = [Path(d) for d in sys.argv[1:]] or [HERE / "runs" / "rank1"]
    out, lines = {}, []
    for d in dirs:
        runs = [json.loads(p.read_text()) for p in d.glob("*.json")]
        runs = sorted(runs, key=lambda r: (r["config"], r["seed"]))
        for cfg in sorted({r["config"] for r in runs}):
            rs = [r for r in runs if r["config"] == cfg]
            lines += [f"## {d.name} / {cfg}: seeds {[r['seed'] for r in rs]}", ""]
            lines.append("| iteration | actions | method | k=0 | k=1 | k=2 | per seed (k=1; k=2) |")
            lines.append("|---|---|---|---|---|---|---|")
            iters = sorted({e["iteration"] for r in rs for e in r["evals"]})
            for it in iters:
                for kind, key in (("mean (det.)", "rows"), ("sampled", "rows_stochastic_actions")):
                    for method in ("pearl", "prior", "oracle"):
                        per_seed = {}
                        for r in rs:
                            ev = [e for e in r["evals"] if e["iteration"] == it]
                            if not ev or not ev[0].get(key):
                                continue
                            per_seed[r["seed"]] = {x["setting"]["context_episodes"]: (x["mean"], x["se"])
                                                   for x in ev[0][key] if x["method"] == method}
                        if not per_seed or not all(per_seed.values()):
                            continue
                        cells = []
                        for k in (0, 1, 2):
                            v = [ps[k][0] for ps in per_seed.values()]
                            m = sum(v) / len(v)
                            se = (math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1) / len(v)) if len(v) > 1 else float("nan"))
                            cells.append(f"{m:.2f} ± {se:.2f}")
                            out.setdefault(f"{d.name}/{cfg}/it{it}/{key}/{method}", {})[k] = {"mean": m, "se_seeds": se, "n_seeds": len(v)}
                        seeds = "; ".join(f"s{s}: {ps[1][0]:.2f}±{ps[1][1]:.2f}, {ps[2][0]:.2f}±{ps[2][1]:.2f}" for s, ps in per_seed.items())
                        lines.append(f"| {it} | {kind} | {method} | {' | '.join(cells)} | {seeds if method != 'oracle' else ''} |")
            lines.append("")
            lines.append("| seed | train CPU s | total CPU s (train + evals) | wall s | load 1-min start/end | env steps |")
            lines.append("|---|---|---|---|---|---|")
            for r in rs:
                lines.append(f"| {r['seed']} | {r['train_cpu_s']} | {r['total_cpu_s']} | {r['total_wall_s']} | "
                             f"{r['load_start']:.1f} / {r['load_end']:.1f} | {int(r['metrics'][-1]['env_steps'])} |")
            lines.append("")
    (HERE / "results.md").write_text("\n".join(lines) + "\n")
    (HERE / "results.json").write_text(json.dumps(out, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
