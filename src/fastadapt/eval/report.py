"""Result files: ``{"rows": [...]}`` JSON (DESIGN.md schema) and markdown tables.

The markdown table puts settings in rows and methods in columns (``mean ± se``); published reference
figures are shown in extra columns whose header ends in "(paper)" so they can never be mistaken for results.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastadapt.core.types import Row


def setting_label(setting: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in setting.items()) or "-"


def _setting_key(setting: dict[str, Any]) -> str:
    return json.dumps(setting, sort_keys=True, default=str)


def _fmt(row: Row) -> str:
    mean = row.mean
    digits = 4 if abs(mean) < 10 else 2 if abs(mean) < 1000 else 1
    text = f"{mean:.{digits}f}"
    if row.se is not None and math.isfinite(row.se):
        text += f" ± {row.se:.{digits}f}"
    success = row.extra.get("success_rate")
    if isinstance(success, (int, float)) and math.isfinite(success):
        text += f" (success {success:.2f})"  # Meta-World rows: share of episodes that solved the task
    return text


def markdown_table(rows: Sequence[Row], references: Sequence[Row] = ()) -> str:
    """Settings as table rows, methods (then references) as columns."""
    settings: dict[str, dict[str, Any]] = {}
    methods: list[str] = []
    cells: dict[tuple[str, str], str] = {}
    for r in list(rows) + list(references):
        sk = _setting_key(r.setting)
        settings.setdefault(sk, r.setting)
        if r.method not in methods:
            methods.append(r.method)
        cells[(sk, r.method)] = _fmt(r) if r in rows else f"{r.mean:g}"
    header = "| setting | " + " | ".join(methods) + " |"
    sep = "|---|" + "---|" * len(methods)
    lines = [header, sep]
    for sk, setting in settings.items():
        vals = [cells.get((sk, m), "") for m in methods]
        lines.append(f"| {setting_label(setting)} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def rows_to_json(rows: Sequence[Row], **meta: Any) -> dict[str, Any]:
    return {**meta, "rows": [r.to_json() for r in rows]}


def load_rows(path: Path) -> tuple[list[Row], dict[str, Any]]:
    """Rows and the other top-level fields of a result JSON file."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise ValueError(f"{path}: not a result file (expected an object with a 'rows' list)")
    rows = [Row.from_json(r) for r in data["rows"]]
    refs = [Row.from_json(r) for r in data.get("references", [])]
    meta = {k: v for k, v in data.items() if k not in {"rows"}}
    meta["_references"] = refs
    return rows, meta


def write_results(
    out_dir: Path,
    rows: Sequence[Row],
    *,
    title: str,
    references: Sequence[Row] = (),
    notes: Sequence[str] = (),
    meta: dict[str, Any] | None = None,
    stem: str = "results",
) -> dict[str, Path]:
    """Write ``<stem>.json`` and ``<stem>.md`` into ``out_dir``; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = rows_to_json(rows, **(meta or {}))
    if references:
        payload["references"] = [r.to_json() for r in references]
    json_path = out_dir / f"{stem}.json"
    json_path.write_text(json.dumps(payload, indent=2) + "\n")
    md = [f"# {title}", "", markdown_table(rows, references), ""]
    if references:
        md += ["Columns marked (paper) are published figures, shown for comparison; they are not our results.", ""]
    for note in notes:
        md += [note, ""]
    md_path = out_dir / f"{stem}.md"
    md_path.write_text("\n".join(md))
    return {"json": json_path, "md": md_path}
