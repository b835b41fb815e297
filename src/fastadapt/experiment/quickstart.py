"""``fastadapt quickstart``: the embedded default job, a small but complete meta-train + meta-test run.

Part 1 (few-shot): MAML on 10-shot sinusoid regression (amplitude U[0.1,5], phase U[0,pi], x U[-5,5]),
then the meta-test protocol on held-out tasks: query MSE of the meta-learned initialisation after 0, 1 and
10 adaptation steps next to a randomly initialised network and a network pretrained on all tasks jointly
(both fine-tuned with the same steps). Prints the table and writes ``adaptation.png``.

Part 2 (meta-RL, when RL² is available): RL² on 5-armed Bernoulli bandits with 10 pulls next to random,
UCB1, Thompson sampling and the exact Bayes-optimal value.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from fastadapt.core.registry import ALGOS, BENCHMARKS
from fastadapt.core.types import Row
from fastadapt.eval.plots import plot_rows
from fastadapt.eval.report import write_results
from fastadapt.experiment import catalog
from fastadapt.experiment.config import shipped_config_names
from fastadapt.experiment.runner import bench, evaluate, train

SINUSOID_CONFIG = "maml-sinusoid"
BANDIT_CONFIG = "rl2-bandit"


def _cell(rows: list[Row], method: str, **setting: Any) -> Row | None:
    for r in rows:
        if r.method == method and all(r.setting.get(k) == v for k, v in setting.items()):
            return r
    return None


def _fmt(r: Row | None) -> str:
    if r is None:
        return "-"
    se = f" ± {r.se:.3f}" if r.se == r.se else ""
    return f"{r.mean:.3f}{se}"


SMOKE_TRAIN = ["train.iterations=3", "train.checkpoint_every=3"]


def sinusoid_part(out: Path, quiet: bool, console: Console, smoke: bool = False) -> tuple[list[Row], bool]:
    run_dir = out / SINUSOID_CONFIG
    console.rule("[bold]Part 1: MAML on 10-shot sinusoid regression")
    train(SINUSOID_CONFIG, SMOKE_TRAIN if smoke else [], out=run_dir, quiet=quiet, console=Console(stderr=True))
    evals = ["eval.adapt_steps=[0,1,2,3,5,10]"] + (["eval.tasks=20"] if smoke else [])
    rows = evaluate(run_dir, evals)
    steps = sorted({int(r.setting["adapt_steps"]) for r in rows})
    methods = [m for m in ("maml", "pretrained", "random-init") if any(r.method == m for r in rows)]
    table = Table(title="query MSE on held-out sinusoid tasks (lower is better; mean ± s.e. over tasks)")
    table.add_column("adaptation steps", justify="right")
    for m in methods:
        table.add_column(m, justify="right")
    for k in (0, 1, 10):
        if k in steps:
            table.add_row(str(k), *[_fmt(_cell(rows, m, adapt_steps=k)) for m in methods])
    console.print(table)
    plot_rows(rows, out / "adaptation.png", title="sinusoid 10-shot: query MSE vs adaptation steps",
              ylabel="query MSE")
    maml1 = _cell(rows, "maml", adapt_steps=1)
    others = [_cell(rows, m, adapt_steps=1) for m in ("pretrained", "random-init")]
    ok = maml1 is not None and all(o is not None and maml1.mean + 2 * maml1.se < o.mean - 2 * o.se for o in others)
    verdict = ("MAML after 1 step beats both baselines clearly (beyond 2 s.e.)" if ok
               else "MAML after 1 step does NOT clearly beat both baselines")
    console.print(("[green]" if ok else "[red]") + verdict)
    console.print(f"adaptation curve: {out / 'adaptation.png'}")
    return rows, ok


def bandit_part(out: Path, quiet: bool, console: Console, smoke: bool = False) -> list[Row]:
    console.rule("[bold]Part 2: RL² on 5-armed Bernoulli bandits, 10 pulls")
    run_dir = out / BANDIT_CONFIG
    train(BANDIT_CONFIG, SMOKE_TRAIN if smoke else [], out=run_dir, quiet=quiet, console=Console(stderr=True))
    rl2_rows = evaluate(run_dir, ["eval.trials=200"] if smoke else [])
    trials = 200 if smoke else 20000
    base_rows, _ = bench(
        "bandits",
        ["arms=5", "pulls=10", f"trials={trials}", "methods=[random,ucb1,thompson,bayes_optimal]"],
        out=out / "bandit-baselines", quiet=True, console=Console(stderr=True),
    )
    rows = [r for r in base_rows] + [r for r in rl2_rows if r.setting.get("arms") == 5 and r.setting.get("pulls") == 10]
    table = Table(title="total reward per trial over held-out bandit tasks (k=5, n=10; higher is better)")
    table.add_column("method")
    table.add_column("mean ± s.e.", justify="right")
    table.add_column("trials", justify="right")
    for r in rows:
        table.add_row(r.method, _fmt(r), str(r.n))
    console.print(table)
    return rows


def run_quickstart(
    out: Path | None, *, quiet: bool = False, console: Console | None = None, smoke: bool = False
) -> Path:
    console = console or Console()
    catalog.load_all()
    if out is None:
        out = Path("runs") / f"quickstart-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    rows, ok = sinusoid_part(out, quiet, console, smoke)
    all_rows = list(rows)
    if "rl2" in ALGOS and BANDIT_CONFIG in shipped_config_names() and "bandits" in BENCHMARKS:
        all_rows += bandit_part(out, quiet, console, smoke)
    write_results(out, all_rows, title="fastadapt quickstart", meta={"maml_beats_baselines": ok})
    console.print(f"results: {out / 'results.json'}")
    return out
