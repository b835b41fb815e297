"""``fastadapt bench tabular-mdp``: the random tabular-MDP table of RL² (Duan et al. 2016, Table 2).

Example::

    fastadapt bench tabular-mdp --set episodes=[10,25] trials=1000 methods=[psrl,random]

Rows: ``method`` in ``psrl, opsrl, ucrl2, beb, eps_greedy, greedy, random, oracle``; ``setting =
{"episodes": n}``; ``mean`` = average total reward over the n episodes (10 states, 5 actions, horizon 10);
``se = std / sqrt(trials - 1)``; ``n = trials``; ``extra = {"tuned": {...} | None, "wall_s": ...}``. The
paper's columns are added as references labelled ``"<method> (paper)"``. Agent definitions and the tuning
protocol: :mod:`fastadapt.baselines.mdp`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from fastadapt.baselines.mdp import MDP_METHODS, evaluate_mdp_method
from fastadapt.core.config import Section
from fastadapt.core.errors import ConfigError
from fastadapt.core.registry import register_benchmark
from fastadapt.core.types import BenchContext, Row

#: RL² Table 2 (as reproduced in /work/shared/REFERENCES.md): episodes -> column -> value.
_PAPER_COLUMNS = ("random", "psrl", "opsrl", "ucrl2", "beb", "eps_greedy", "greedy", "rl2", "snail")
_PAPER_VALUES: dict[int, tuple[float, ...]] = {
    10: (100.1, 138.1, 144.1, 146.6, 150.2, 132.8, 134.8, 156.2, 159.1),
    25: (250.2, 408.8, 425.2, 424.1, 427.8, 377.3, 368.8, 445.7, 447.2),
    50: (499.7, 904.4, 930.7, 918.9, 917.8, 823.3, 769.3, 936.1, 942.3),
    75: (749.9, 1417.1, 1449.2, 1427.6, 1422.6, 1293.9, 1172.9, 1428.8, 1447.5),
    100: (999.4, 1939.5, 1973.9, 1942.1, 1935.1, 1778.2, 1578.5, 1913.7, 1953.1),
}


def _listify(v: Any) -> Any:
    return v if isinstance(v, (list, tuple)) else [v]


class TabularMDPBenchConfig(Section):
    """``fastadapt bench tabular-mdp --set key=value`` (scalars are accepted where lists are)."""

    episodes: list[int] = Field(default_factory=lambda: [10, 25, 50, 75, 100], description="episodes n")
    trials: int = Field(1000, ge=2, description="trials (fresh MDPs) per setting")
    methods: list[str] = Field(default_factory=lambda: list(MDP_METHODS))
    seed: int = Field(0, ge=0)

    @field_validator("episodes", "methods", mode="before")
    @classmethod
    def _wrap(cls, v: Any) -> Any:
        return _listify(v)

    @field_validator("episodes")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if not v or min(v) < 1:
            raise ValueError("must be a non-empty list of integers >= 1")
        return v

    @field_validator("methods")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        bad = [m for m in v if m not in MDP_METHODS]
        if bad or not v:
            raise ConfigError(f"methods: unknown MDP method(s) {bad}; allowed: {', '.join(MDP_METHODS)}")
        return v


def paper_references(episodes: list[int], methods: list[str]) -> list[Row]:
    """The paper's values for the requested episode counts, labelled ``"<method> (paper)"``."""
    refs = []
    for n in episodes:
        vals = _PAPER_VALUES.get(n)
        if vals is None:
            continue
        for col, val in zip(_PAPER_COLUMNS, vals):
            if col in methods or col in ("rl2", "snail"):
                src = "SNAIL (Mishra et al. 2018)" if col == "snail" else "RL² (Duan et al. 2016) Table 2"
                refs.append(Row(f"{col} (paper)", {"episodes": n}, val, math.nan, 1000, {"source": src}))
    return refs


def plot_mdp(rows: list[Row], refs: list[Row], path: Path) -> Path:
    """Total reward per episode (mean/n ± se/n) over n for each method; the paper's values as crosses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.5, 5))
    methods = list(dict.fromkeys(r.method for r in rows))
    for i, m in enumerate(methods):
        rs = sorted((r for r in rows if r.method == m), key=lambda r: r.setting["episodes"])
        xs = [r.setting["episodes"] for r in rs]
        ax.errorbar(xs, [r.mean / x for r, x in zip(rs, xs)], yerr=[r.se / x for r, x in zip(rs, xs)],
                    marker="o", capsize=3, color=f"C{i}", label=m)
        ps = sorted((r for r in refs if r.method == f"{m} (paper)"), key=lambda r: r.setting["episodes"])
        if ps:
            ax.plot([r.setting["episodes"] for r in ps], [r.mean / r.setting["episodes"] for r in ps],
                    "x", color=f"C{i}", markersize=8)
    ax.plot([], [], "kx", label="paper (RL² Table 2)")
    ax.set_xlabel("episodes n")
    ax.set_ylabel("total reward / n")
    ax.set_title("random tabular MDPs (10 states, 5 actions, horizon 10)")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@register_benchmark("tabular-mdp", config=TabularMDPBenchConfig)
def run_tabular_mdp(cfg: TabularMDPBenchConfig, ctx: BenchContext) -> list[Row]:
    """Random tabular MDPs (RL² Table 2): PSRL, OPSRL, UCRL2, BEB, eps-greedy, greedy, random, oracle."""
    rows: list[Row] = []
    tuned_notes: list[str] = []
    work = [(n, m) for n in cfg.episodes for m in cfg.methods]
    for n, m in ctx.track(work, description="tabular-mdp", total=len(work)):
        res = evaluate_mdp_method(m, n, cfg.trials, cfg.seed)
        rows.append(Row(m, {"episodes": n}, res.mean, res.se, res.n,
                        {"tuned": res.tuned, "wall_s": round(res.wall_s, 3)}))
        if res.tuned:
            tuned_notes.append(f"{m} n={n}: {res.tuned}")
    refs = paper_references(list(cfg.episodes), list(cfg.methods))
    ctx.references.extend(refs)
    ctx.notes.append(
        "Ours: 10 states, 5 actions, horizon 10, P ~ Dirichlet(1), R ~ N(1,1), reward noise N(0,1), fresh MDP per "
        f"trial, the same MDPs and noise tape for every method, seed {cfg.seed}, se = std/sqrt(trials-1). "
        "Parameters are tuned on 200 separate tuning trials (the paper tuned on its test trials). 'oracle' "
        "is value iteration on the true MDP. Columns marked '(paper)' are published numbers, not our results."
    )
    if tuned_notes:
        ctx.notes.append("Tuned parameters: " + "; ".join(tuned_notes) + ".")
    ctx.plot = lambda rs, path: plot_mdp(list(rs), refs, Path(path))
    return rows
