"""Evaluate models saved by run_omniglot.py on one or more folders of held-out one-shot runs (session 7).

    .venv/bin/python benchmarks/omniglot/eval_runs.py --out OUT.json --runs RUNS_DIR [RUNS_DIR ...] -- MODEL_DIR ...

For every model and runs folder: the error of four decision variants fixed in advance (they are never chosen
per model or per folder):

- ``plain``: each test item gets the class of its nearest prototype (the protocol's default);
- ``tta4``: 4 extra copies of every image shifted by up to 2 pixels, embeddings averaged (``eval.tta``);
- ``balanced`` / ``tta4+balanced``: the transductive one-to-one assignment (``eval.assignment=balanced``): the
  20 test items of a run are one per class by construction of the protocol, so the labelling with the highest
  total log-probability under that constraint is taken (an optimal assignment). This uses the structure of the
  runs, so it is reported separately from the plain numbers.

Also per alphabet (from the folder's ``runs.json``) and, if several models are given, the ensemble (mean of
their softmax probabilities) for ``plain`` and ``tta4+balanced``. The runs are only evaluated, never trained
or tuned on. Images are read the way each model's task read its training images (``task.crop``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from fastadapt.algos.fewshot.common import decide
from fastadapt.tasks.fewshot.omniglot_runs import load_runs, runs_accuracy

try:  # run as a script from the repository root
    from eval_saved import load_learner  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from eval_saved import load_learner  # type: ignore[import-not-found]

VARIANTS = {"plain": ({}, "argmax"), "tta4": ({"tta": 4}, "argmax"),
            "balanced": ({}, "balanced"), "tta4+balanced": ({"tta": 4}, "balanced")}


def alphabets_of(folder: Path) -> list[str] | None:
    meta = folder / "runs.json"
    if not meta.exists():
        return None
    return [r["alphabet"] for r in json.loads(meta.read_text())["runs"]]


def summarise(acc: torch.Tensor | list[float], alphas: list[str] | None) -> dict[str, object]:
    a = torch.as_tensor(acc, dtype=torch.float64)
    out: dict[str, object] = {"error": float(1 - a.mean()), "per_run": [float(v) for v in a]}
    if alphas is not None:
        out["error_by_alphabet"] = {
            al: float(1 - a[[i for i, x in enumerate(alphas) if x == al]].mean()) for al in sorted(set(alphas))
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dirs", nargs="+", help="model folders written by run_omniglot.py")
    ap.add_argument("--runs", nargs="+", required=True, help="folders of official-format runs")
    ap.add_argument("--build-seeds", nargs="*", type=int, default=[],
                    help="first write 20 runs per seed from the held-out alphabets (build_runs) into --build-dir")
    ap.add_argument("--build-dir", default="/tmp/omniglot-extra-runs")
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.time()
    if args.build_seeds:
        from run_omniglot import HELD_OUT, ROOT, SOURCES  # type: ignore[import-not-found]

        from fastadapt.tasks.fewshot.omniglot import scan_omniglot
        from fastadapt.tasks.fewshot.omniglot_runs import build_runs

        images = scan_omniglot(ROOT, SOURCES)
        for seed in args.build_seeds:
            folder = Path(args.build_dir) / f"runs_seed{seed}"
            if not (folder / "runs.json").exists():
                build_runs(images, folder, HELD_OUT, n_runs=20, seed=seed)
            args.runs.append(str(folder))
    rows: list[dict[str, object]] = []
    probs: dict[tuple[str, str, str], torch.Tensor] = {}
    loaded: dict[tuple[str, bool], object] = {}
    for d in map(Path, args.dirs):
        res, learner = load_learner(d)
        crop = bool(learner.task.info.get("crop", False))
        for rf in map(Path, args.runs):
            key = (str(rf), crop)
            if key not in loaded:
                loaded[key] = load_runs(rf, int(learner.task.x_shape[-1]), crop=crop)
            runs = loaded[key]
            alphas = alphabets_of(rf)
            for vname, (opts, rule) in VARIANTS.items():
                s = learner.episode_scores(runs.episode, opts, seed=0)
                p = torch.softmax(s, -1)
                probs[(d.name, str(rf), vname)] = p
                acc = runs_accuracy(decide(torch.log(p), rule), runs)
                row = {"model": d.name, "runs": str(rf), "variant": vname, "crop": crop, **summarise(acc, alphas)}
                rows.append(row)
                print(d.name, rf.name, vname, f"error={row['error']:.4f}", row.get("error_by_alphabet", ""),
                      flush=True)
    if len(args.dirs) > 1:
        names = [Path(x).name for x in args.dirs]
        for rf in map(Path, args.runs):
            runs = next(v for k, v in loaded.items() if k[0] == str(rf))
            for vname, (_, rule) in (("plain", VARIANTS["plain"]), ("tta4+balanced", VARIANTS["tta4+balanced"])):
                p = torch.stack([probs[(n, str(rf), vname)] for n in names]).mean(0)
                acc = runs_accuracy(decide(torch.log(p), rule), runs)
                row = {"model": "ensemble:" + "+".join(names), "runs": str(rf), "variant": vname,
                       **summarise(acc, alphabets_of(rf))}
                rows.append(row)
                print("ensemble", rf.name, vname, f"error={row['error']:.4f}", flush=True)
    Path(args.out).write_text(json.dumps({"runs": args.runs, "models": args.dirs, "rows": rows,
                                         "wall_s": round(time.time() - t0, 1)}, indent=1))


if __name__ == "__main__":
    main()
