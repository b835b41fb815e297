"""`fastadapt quickstart --smoke` runs the whole embedded job end to end with tiny budgets (numbers meaningless;
the real run and its figures are in benchmarks/quickstart/)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_quickstart_smoke(tmp_path: Path) -> None:
    out = tmp_path / "qs"
    proc = subprocess.run([sys.executable, "-m", "fastadapt.cli", "quickstart", "--smoke", "--quiet", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "query MSE" in proc.stdout
    assert (out / "adaptation.png").stat().st_size > 1000
    rows = json.loads((out / "results.json").read_text())["rows"]
    methods = {r["method"] for r in rows}
    assert {"maml", "pretrained", "random-init"} <= methods
    assert {r["setting"]["adapt_steps"] for r in rows if r["method"] == "maml"} >= {0, 1, 10}
