"""Imports flow one way (DESIGN.md): core <- ops <- tasks, nn <- samplers <- algos <- baselines, eval,
bench <- experiment <- cli. tasks and nn never import each other; one algorithm never imports another
(shared pieces live in ops/, nn/ or algos/common.py, algos/<family>/common.py); eval never imports algos.
Lazy imports inside functions count too."""

from __future__ import annotations

import ast
from pathlib import Path

import fastadapt

ROOT = Path(fastadapt.__file__).parent
RANK = {
    "core": 0, "ops": 1, "tasks": 2, "nn": 2, "samplers": 3, "algos": 4,
    "baselines": 5, "eval": 5, "bench": 6, "experiment": 7, "cli": 8,
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    mod = _module_name(path)
    pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append(target)
            found += [f"{target}.{a.name}" for a in node.names]
    return [f for f in found if f == "fastadapt" or f.startswith("fastadapt.")]


def _layer(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in RANK else None


def _is_shared_algo_module(name: str) -> bool:
    parts = name.split(".")
    return "common" in parts[2:4] or len(parts) <= 3  # fastadapt.algos[.family] packages, *.common modules


def violations() -> list[str]:
    bad: list[str] = []
    for path in sorted(ROOT.rglob("*.py")):
        src = _module_name(path)
        src_layer = _layer(src)
        for target in _imports(path):
            dst_layer = _layer(target)
            if src_layer is None or dst_layer is None:
                if src == "fastadapt" and target != "fastadapt":
                    bad.append(f"{src} imports {target} (the package root must stay import-free)")
                continue
            if src_layer == dst_layer:
                if src_layer == "algos":
                    src_algo = src.split(".")[:4]
                    dst_algo = target.split(".")[:4]
                    if src_algo != dst_algo and not _is_shared_algo_module(".".join(dst_algo)):
                        # allow importing a symbol from a family package or common module
                        bad.append(f"{src} imports {target} (algorithms never import each other)")
                continue
            if RANK[dst_layer] > RANK[src_layer] or (RANK[dst_layer] == RANK[src_layer]):
                bad.append(f"{src} ({src_layer}) imports {target} ({dst_layer}) against the layer order")
            if src_layer == "eval" and dst_layer == "algos":
                bad.append(f"{src} imports {target} (eval reaches algorithms only through the protocols)")
    return sorted(set(bad))


def test_imports_flow_one_way() -> None:
    assert violations() == []


def test_checker_catches_a_violation(tmp_path: Path) -> None:
    bad = ROOT / "core" / "_layering_probe.py"
    bad.write_text("from fastadapt.algos import rl\n")
    try:
        assert any("_layering_probe" in v for v in violations())
    finally:
        bad.unlink()
