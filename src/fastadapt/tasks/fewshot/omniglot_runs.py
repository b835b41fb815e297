"""The official Omniglot one-shot classification runs (Lake et al. 2015, Science; the ``all_runs`` folder of
brendenlake/omniglot): 20-way one-shot classification *within one alphabet*, one image per class drawn by
one person and test images drawn by another.

Format of a runs folder (``DIR/runNN`` or ``DIR/all_runs/runNN``)::

    run01/training/class01.png ... class20.png      one image per class
    run01/test/item01.png ... item20.png            the items to classify
    run01/class_labels.txt                          lines "run01/test/item01.png run01/training/class12.png"

Paths in ``class_labels.txt`` are relative to the folder holding the ``runNN`` folders. Accuracy is the share
of test items assigned to their class.

- :func:`load_runs` reads such a folder into :class:`OmniglotRuns` (one
  :class:`~fastadapt.core.types.FewShotEpisode` with a task per run, ``support_x: [runs, way, 1, S, S]``
  in class order, ``query_x: [runs, items, 1, S, S]`` in item order) with clear ``DataError`` messages.
- :func:`build_runs` writes runs in exactly this format from held-out alphabets of the background images
  (for tests and benchmarks, since only the background splits ship here): each run picks an alphabet, 20 of
  its characters and two different drawers (one for the training images, one for the test items), copying
  the original 105x105 PNG files; ``runs.json`` records the provenance.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from fastadapt.core.errors import ConfigError, DataError
from fastadapt.core.seeding import np_rng
from fastadapt.core.types import FewShotEpisode
from fastadapt.tasks.fewshot.omniglot import OmniglotImage, decode_png, images_to_tensor

_RUN = re.compile(r"^run\d+$")


@dataclass
class OmniglotRuns:
    """Loaded runs: ``names`` (``run01``...), ``episode`` (one task per run, see the module docstring),
    ``support_files[r][k]`` / ``query_files[r][m]`` the image paths behind each example."""

    names: list[str]
    episode: FewShotEpisode
    support_files: list[list[str]] = field(default_factory=list)
    query_files: list[list[str]] = field(default_factory=list)

    @property
    def way(self) -> int:
        return int(self.episode.support_x.shape[1])

    def __len__(self) -> int:
        return len(self.names)


def find_run_dirs(folder: str | Path) -> tuple[Path, list[Path]]:
    """(base folder, sorted ``runNN`` folders) of ``folder`` or its ``all_runs`` subfolder."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError(f"omniglot runs: folder {folder} does not exist")
    for base in (folder, folder / "all_runs"):
        if base.is_dir():
            runs = sorted(p for p in base.iterdir() if p.is_dir() and _RUN.match(p.name))
            if runs:
                return base, runs
    raise DataError(
        f"omniglot runs: no run01.. folders in {folder} (expected {folder}/runNN/training/classKK.png, "
        "runNN/test/itemMM.png and runNN/class_labels.txt)"
    )


def _read_run(base: Path, run: Path) -> tuple[list[Path], list[Path], list[int]]:
    labels_file = run / "class_labels.txt"
    if not labels_file.is_file():
        raise DataError(f"omniglot runs: {labels_file} is missing")
    train_dir, test_dir = run / "training", run / "test"
    if not train_dir.is_dir() or not test_dir.is_dir():
        raise DataError(f"omniglot runs: {run} needs training/ and test/ folders")
    classes = sorted(train_dir.glob("*.png"))
    if not classes:
        raise DataError(f"omniglot runs: no training images in {train_dir}")
    index = {p.resolve(): k for k, p in enumerate(classes)}
    items: list[Path] = []
    targets: list[int] = []
    for ln, line in enumerate(labels_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise DataError(
                f"omniglot runs: {labels_file} line {ln} should read "
                f"'{run.name}/test/itemMM.png {run.name}/training/classKK.png', got {line.strip()!r}"
            )
        item, cls = base / parts[0], base / parts[1]
        if not item.is_file():
            raise DataError(f"omniglot runs: {labels_file} line {ln} names missing file {item}")
        if cls.resolve() not in index:
            raise DataError(
                f"omniglot runs: {labels_file} line {ln} names {cls}, which is not a training image of {run.name}"
            )
        items.append(item)
        targets.append(index[cls.resolve()])
    if not items:
        raise DataError(f"omniglot runs: {labels_file} lists no test items")
    if len({p.resolve() for p in items}) != len(items):
        raise DataError(f"omniglot runs: {labels_file} lists a test item twice")
    return classes, items, targets


def _load_images(paths: Sequence[Path], image_size: int, crop: bool = False) -> torch.Tensor:
    arrays = []
    for p in paths:
        try:
            data = p.read_bytes()
        except OSError as e:
            raise DataError(f"omniglot runs: cannot read {p} ({e})") from None
        arrays.append(decode_png(data, str(p)))
    return images_to_tensor(arrays, image_size, crop)


def load_runs(folder: str | Path, image_size: int = 28, crop: bool = False) -> OmniglotRuns:
    """Read a folder of official-format runs (module docstring), images resized to ``image_size`` with
    ink 1.0 and optionally cut to their ink (``crop``), as :func:`~fastadapt.tasks.fewshot.omniglot.load_omniglot`.

    Returns :class:`OmniglotRuns` whose ``episode`` has ``support_x: [runs, way, 1, S, S]``,
    ``support_y: [runs, way] = arange(way)``, ``query_x: [runs, items, 1, S, S]``, ``query_y: [runs, items]``.
    All runs must have the same number of classes and items.
    """
    if image_size < 8:
        raise ConfigError(f"image_size: must be >= 8, got {image_size}")
    base, runs = find_run_dirs(folder)
    sx, qx, qy, sfiles, qfiles = [], [], [], [], []
    for run in runs:
        classes, items, targets = _read_run(base, run)
        if sx and (len(classes) != sx[0].shape[0] or len(items) != qx[0].shape[0]):
            raise DataError(
                f"omniglot runs: {run.name} has {len(classes)} classes / {len(items)} items but "
                f"{runs[0].name} has {sx[0].shape[0]} / {qx[0].shape[0]}; runs must have equal sizes"
            )
        sx.append(_load_images(classes, image_size, crop))
        qx.append(_load_images(items, image_size, crop))
        qy.append(torch.tensor(targets, dtype=torch.int64))
        sfiles.append([str(p) for p in classes])
        qfiles.append([str(p) for p in items])
    way = sx[0].shape[0]
    episode = FewShotEpisode(
        torch.stack(sx),
        torch.arange(way, dtype=torch.int64).expand(len(runs), way).contiguous(),
        torch.stack(qx),
        torch.stack(qy),
    )
    return OmniglotRuns([r.name for r in runs], episode, sfiles, qfiles)


def build_runs(
    images: Sequence[OmniglotImage],
    out_dir: str | Path,
    alphabets: Sequence[str],
    n_runs: int = 20,
    way: int = 20,
    seed: int = 0,
) -> Path:
    """Write ``n_runs`` official-format runs built from ``alphabets`` into ``out_dir``.

    ``images`` are raw images (e.g. :func:`~fastadapt.tasks.fewshot.omniglot.scan_omniglot`). Runs cycle
    through the alphabets that have at least ``way`` characters; run ``r`` draws ``way`` characters of its
    alphabet and two different drawers (training images by the first, test items by the second), shuffles
    the class and item orders and copies the PNG bytes unchanged. Seeded: same inputs => same files.
    ``out_dir/runs.json`` records alphabet, characters and drawers of every run.
    """
    out = Path(out_dir)
    by_alpha: dict[str, dict[str, dict[int, OmniglotImage]]] = {}
    for im in images:
        by_alpha.setdefault(im.alphabet, {}).setdefault(im.character, {})[im.drawer] = im
    missing = [a for a in alphabets if a not in by_alpha]
    if missing:
        raise ConfigError(f"alphabets: {missing[0]!r} not among the images ({', '.join(sorted(by_alpha))})")
    eligible = [a for a in alphabets if len(by_alpha[a]) >= way]
    if not eligible:
        raise ConfigError(f"alphabets: none of {list(alphabets)} has {way} characters for {way}-way runs")
    if n_runs < 1:
        raise ConfigError(f"n_runs: must be >= 1, got {n_runs}")
    rng = np_rng(seed, "omniglot-runs")
    out.mkdir(parents=True, exist_ok=True)
    meta = []
    for r in range(n_runs):
        name = f"run{r + 1:02d}"
        alpha = eligible[r % len(eligible)]
        chars = sorted(by_alpha[alpha])
        pick = [chars[i] for i in rng.choice(len(chars), way, replace=False)]
        common = sorted(set.intersection(*(set(by_alpha[alpha][c]) for c in pick)))
        if len(common) < 2:
            raise DataError(f"omniglot runs: characters of {alpha} share fewer than 2 drawers")
        d_train, d_test = (common[i] for i in rng.choice(len(common), 2, replace=False))
        item_order = rng.permutation(way)
        run = out / name
        (run / "training").mkdir(parents=True, exist_ok=True)
        (run / "test").mkdir(parents=True, exist_ok=True)
        lines = []
        for k, c in enumerate(pick):
            (run / "training" / f"class{k + 1:02d}.png").write_bytes(by_alpha[alpha][c][int(d_train)].data)
        for m, k in enumerate(item_order):
            (run / "test" / f"item{m + 1:02d}.png").write_bytes(by_alpha[alpha][pick[k]][int(d_test)].data)
            lines.append(f"{name}/test/item{m + 1:02d}.png {name}/training/class{int(k) + 1:02d}.png")
        (run / "class_labels.txt").write_text("\n".join(lines) + "\n")
        meta.append({
            "run": name, "alphabet": alpha, "characters": pick,
            "train_drawer": int(d_train), "test_drawer": int(d_test),
        })
    (out / "runs.json").write_text(json.dumps({"seed": seed, "way": way, "runs": meta}, indent=1))
    return out


def runs_accuracy(pred: torch.Tensor | np.ndarray, runs: OmniglotRuns) -> np.ndarray:
    """Per-run accuracy ``[runs]`` of predicted class indices ``pred: [runs, items]``."""
    p = torch.as_tensor(pred)
    return (p == runs.episode.query_y).to(torch.float64).mean(1).numpy()
