"""Merge several `fastadapt bench` result folders of one benchmark into one results.json/.md/.png.

Usage: python benchmarks/bandits/merge.py {bandits|tabular-mdp} OUT_DIR RUN_DIR [RUN_DIR ...]

Rows are concatenated (no recomputation); the paper's reference columns and the plot are rebuilt with the
benchmark module's own functions; notes list the tuned parameters and each run's wall time.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fastadapt.eval.report import load_rows, write_results


def main(kind: str, out: Path, runs: list[Path]) -> None:
    rows, metas = [], []
    for run in runs:
        r, meta = load_rows(run / "results.json")
        rows += r
        metas.append((run, meta))
    if kind == "bandits":
        from fastadapt.bench.bandits import paper_references, plot_bandits

        cells = list(dict.fromkeys((r.setting["arms"], r.setting["pulls"]) for r in rows))
        refs = paper_references(cells, sorted({r.method for r in rows}))
        plot = lambda: plot_bandits(rows, refs, out / "results.png")  # noqa: E731
    else:
        from fastadapt.bench.tabular_mdp import paper_references, plot_mdp

        eps = list(dict.fromkeys(r.setting["episodes"] for r in rows))
        refs = paper_references(eps, sorted({r.method for r in rows}))
        plot = lambda: plot_mdp(rows, refs, out / "results.png")  # noqa: E731
    notes = ["Merged from: " + "; ".join(
        f"`{run}` (config {meta.get('config')}, wall {meta.get('wall_s')} s)" for run, meta in metas) + "."]
    tuned = [f"{r.method} {r.setting}: {r.extra['tuned']}" for r in rows if r.extra.get("tuned")]
    if tuned:
        notes.append("Tuned parameters: " + "; ".join(tuned) + ".")
    exact = [f"{r.setting}: {r.extra['exact_value']:.4f}" for r in rows if "exact_value" in r.extra]
    if exact:
        notes.append("Bayes-optimal exact expected totals (DP): " + "; ".join(exact) + ".")
    write_results(out, rows, title=f"benchmark: {kind} (merged)", references=refs, notes=notes,
                  meta={"benchmark": kind, "merged_from": [str(r) for r in runs]})
    plot()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), [Path(p) for p in sys.argv[3:]])
