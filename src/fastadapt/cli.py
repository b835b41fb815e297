"""The ``fastadapt`` command: quickstart, list, train, eval, bench, plot.

Exit codes: 0 ok, 2 bad input (config, data, checkpoint; one line on stderr, no traceback), 1 other errors.
Overrides: ``--set key=value`` (repeatable), and any further ``key=value`` arguments, so that
``fastadapt bench bandits --set arms=[5,10] pulls=[10,100] trials=1000`` works as written.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from fastadapt import __version__
from fastadapt.core.allocator import tune_allocator
from fastadapt.core.errors import ConfigError, FastAdaptError, UserInputError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="fastadapt: meta-RL and few-shot meta-learning on PyTorch. Run `fastadapt quickstart` first.",
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)
out_console = Console()

SET_HELP = "Override a config key, e.g. --set algo.lr=1e-3 (repeatable; extra key=value arguments also count)."


def _overrides(sets: Optional[list[str]], extra: Optional[list[str]]) -> list[str]:
    items = list(sets or [])
    for arg in extra or []:
        if "=" not in arg:
            raise ConfigError(f"argument {arg!r}: expected key=value")
        items.append(arg)
    return items


def _rows_table(rows: list, title: str) -> Table:
    table = Table(title=title)
    success = any("success_rate" in r.extra for r in rows)  # Meta-World: share of episodes that succeeded
    cols = ("method", "setting", "mean", "se", "n") + (("success",) if success else ())
    for col in cols:
        table.add_column(col, justify="left" if col in {"method", "setting"} else "right")
    for r in rows:
        setting = ", ".join(f"{k}={v}" for k, v in r.setting.items())
        se = f"{r.se:.4g}" if r.se == r.se else "-"
        cells = [r.method, setting, f"{r.mean:.4g}", se, str(r.n)]
        if success:
            rate = r.extra.get("success_rate")
            cells.append(f"{rate:.2f}" if isinstance(rate, (int, float)) else "-")
        table.add_row(*cells)
    return table


@app.command()
def quickstart(
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default runs/quickstart-<time>)."),
    quiet: bool = typer.Option(False, "--quiet", help="Log lines instead of progress bars."),
    smoke: bool = typer.Option(False, "--smoke", help="Tiny budgets: checks the pipeline in seconds (numbers meaningless)."),
) -> None:
    """Meta-train and meta-test a small complete job (a few minutes on 2 cores); print a table, write plots."""
    from fastadapt.experiment.quickstart import run_quickstart

    run_quickstart(out, quiet=quiet, console=out_console, smoke=smoke)


@app.command("list")
def list_(
    what: str = typer.Argument("all", help="algos | tasks | configs | benchmarks | all"),
) -> None:
    """List registered algorithms, tasks, shipped configs and benchmarks."""
    from fastadapt.core.registry import ALGOS, BENCHMARKS, TASKS
    from fastadapt.experiment import catalog
    from fastadapt.experiment.config import shipped_config_names

    allowed = ("algos", "tasks", "configs", "benchmarks", "all")
    if what not in allowed:
        raise ConfigError(f"WHAT: unknown {what!r}; allowed: {', '.join(allowed)}")
    catalog.load_all()
    if what in ("algos", "all"):
        t = Table(title="algorithms")
        t.add_column("name")
        t.add_column("family")
        t.add_column("description")
        for e in ALGOS:
            t.add_row(e.name, e.family, e.doc)
        out_console.print(t)
    if what in ("tasks", "all"):
        t = Table(title="tasks")
        t.add_column("name")
        t.add_column("family")
        t.add_column("description")
        for e in TASKS:
            t.add_row(e.name, e.family, e.doc)
        out_console.print(t)
    if what in ("configs", "all"):
        t = Table(title="shipped configs")
        t.add_column("name")
        for n in shipped_config_names():
            t.add_row(n)
        out_console.print(t)
    if what in ("benchmarks", "all"):
        t = Table(title="benchmarks")
        t.add_column("name")
        t.add_column("description")
        for e in BENCHMARKS:
            t.add_row(e.name, e.doc)
        out_console.print(t)


@app.command(context_settings={"allow_extra_args": False})
def train(
    config: str = typer.Argument(..., help="Shipped config name (see `fastadapt list configs`) or a YAML path."),
    extra: Optional[list[str]] = typer.Argument(None, help="More key=value overrides."),
    sets: Optional[list[str]] = typer.Option(None, "--set", help=SET_HELP),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default runs/<name>-s<seed>-<time>)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed (overrides train.seed)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    quiet: bool = typer.Option(False, "--quiet", help="Log lines instead of a progress bar."),
) -> None:
    """Train an algorithm; writes config.yaml, metrics.jsonl, summary.json, checkpoints/ and TensorBoard events."""
    from fastadapt.experiment.runner import train as run_train

    if resume and out is None:
        raise ConfigError("--resume: needs --out RUN_DIR (the run to continue)")
    result = run_train(config, _overrides(sets, extra), out=out, seed=seed, resume=resume, quiet=quiet,
                       console=err_console)
    out_console.print(f"run directory: {result.run_dir}")


@app.command("eval")
def eval_(
    run_dir: Path = typer.Argument(..., help="A run directory made by `fastadapt train`."),
    extra: Optional[list[str]] = typer.Argument(None, help="More eval.key=value overrides."),
    sets: Optional[list[str]] = typer.Option(None, "--set", help="Override an eval setting, e.g. --set eval.tasks=100."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the result rows to this file."),
) -> None:
    """Meta-test a trained run on held-out tasks; writes RUN_DIR/eval.json (and --json FILE)."""
    from fastadapt.experiment.runner import evaluate

    rows = evaluate(run_dir, _overrides(sets, extra), json_out=json_out, console=err_console)
    out_console.print(_rows_table(rows, f"eval {run_dir}"))


@app.command()
def bench(
    name: str = typer.Argument(..., help="Benchmark name (see `fastadapt list benchmarks`)."),
    extra: Optional[list[str]] = typer.Argument(None, help="More key=value overrides."),
    sets: Optional[list[str]] = typer.Option(None, "--set", help="Override a benchmark setting, e.g. --set trials=1000."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default bench-results/NAME)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the result rows to this file."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the benchmark."),
    runs: Optional[list[Path]] = typer.Option(
        None, "--run", help="A trained run directory whose eval rows join the table (repeatable)."
    ),
    quiet: bool = typer.Option(False, "--quiet", help="Log lines instead of progress bars."),
) -> None:
    """Run a named benchmark; writes results.json, results.md and results.png into --out."""
    from fastadapt.experiment.runner import bench as run_bench

    rows, out_dir = run_bench(name, _overrides(sets, extra), out=out, json_out=json_out, quiet=quiet, seed=seed,
                              runs=runs, console=err_console)
    out_console.print(_rows_table(rows, f"benchmark {name}"))
    out_console.print(f"results: {out_dir}")


@app.command()
def plot(
    target: Path = typer.Argument(..., help="A run directory or a result JSON file (eval.json, results.json)."),
    out: Optional[Path] = typer.Option(None, "--out", help="PNG file to write."),
) -> None:
    """Plot a run's training curve (and its eval) or a result file's rows."""
    from fastadapt.experiment.runner import plot as run_plot

    path = run_plot(target, out)
    out_console.print(f"plot: {path}")


@app.command()
def version() -> None:
    """Print the library version."""
    out_console.print(__version__)


def main(argv: list[str] | None = None) -> None:
    """Entry point: map fastadapt's errors to exit codes with one line on stderr."""
    try:
        tune_allocator()  # see fastadapt.core.allocator; FASTADAPT_ALLOCATOR=default opts out
        app(args=argv, standalone_mode=False)
    except UserInputError as exc:
        print(f"fastadapt: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except FastAdaptError as exc:
        print(f"fastadapt: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("fastadapt: interrupted", file=sys.stderr)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors carry their own exit code
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()
