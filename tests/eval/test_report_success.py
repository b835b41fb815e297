"""Meta-World rows carry ``success_rate``: the markdown and console tables must show it."""

from __future__ import annotations

import io

from rich.console import Console

from fastadapt.cli import _rows_table
from fastadapt.core.types import Row
from fastadapt.eval.report import markdown_table

ROWS = [
    Row("maml-trpo", {"adapt_steps": 0}, 1.5, 0.25, 10, {"success_rate": 0.125}),
    Row("maml-trpo", {"adapt_steps": 1}, 3.0, 0.5, 10, {"success_rate": 0.75}),
]


def test_markdown_shows_success_rate() -> None:
    md = markdown_table(ROWS)
    assert "1.5000 ± 0.2500 (success 0.12)" in md
    assert "3.0000 ± 0.5000 (success 0.75)" in md


def test_markdown_without_success_rate_is_unchanged() -> None:
    md = markdown_table([Row("random", {"arms": 5}, 5.0, 0.01, 100)])
    assert "success" not in md and "5.0000 ± 0.0100" in md


def _render(rows: list[Row]) -> str:
    buf = io.StringIO()
    Console(file=buf, width=200).print(_rows_table(rows, "eval"))
    return buf.getvalue()


def test_console_table_has_success_column_only_when_rows_have_it() -> None:
    text = _render(ROWS)
    assert "success" in text and "0.75" in text and "0.12" in text
    assert "success" not in _render([Row("random", {"arms": 5}, 5.0, 0.01, 100)])
