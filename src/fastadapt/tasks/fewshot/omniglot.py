"""Omniglot (Lake, Salakhutdinov & Tenenbaum 2015, "Human-level concept learning through probabilistic
program induction", Science 350(6266)) in its official file formats.

Layout expected under ``root`` (the config key ``task.root``; default :func:`default_root`), for each
*source* name such as ``images_background``, ``images_evaluation``, ``images_background_small1``,
``images_background_small2``, either

- the official zip ``root/<source>.zip`` holding ``<source>/<Alphabet>/characterNN/*.png``, or
- its unpacked folder ``root/<source>/<Alphabet>/characterNN/*.png``.

Images are 105x105 black strokes on white; they are loaded with ink = 1.0 and background = 0.0 and
area-resized to ``image_size`` (28 as is usual), giving examples ``[1, image_size, image_size]``; with
``crop`` each image is first cut to a square around its ink (:func:`crop_to_ink`), which removes the drawers'
position and size differences and spends all pixels of the small image on the character. A
character that appears in several sources (Greek and Latin are in both minimal splits) is loaded once;
its class is ``"<Alphabet>/characterNN"`` and its group the alphabet.

:func:`download_omniglot` fetches the official zips for users (resuming a partial ``.part`` file and
verifying a checksum: sha256 where known, otherwise the md5 published with torchvision's Omniglot); the
library never downloads anything by itself.

The registered task ``omniglot`` (family ``fewshot``) returns a
:class:`~fastadapt.tasks.fewshot.episodes.FewShotTasks`.
"""

from __future__ import annotations

import hashlib
import io
import os
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field, field_validator

from fastadapt.core.config import Section
from fastadapt.core.errors import ConfigError, DataError
from fastadapt.core.registry import register_task
from fastadapt.tasks.fewshot.episodes import (
    ClassDataset,
    FewShotTasks,
    resize_images,
    split_by_fraction,
    split_by_groups,
)

BASE_URL = "https://github.com/brendenlake/omniglot/raw/master/python/"

#: Checksums of the official files: (algorithm, hex digest). The sha256 of the two minimal splits were
#: computed from the files of brendenlake/omniglot; for the full splits only the md5 published with
#: torchvision's ``Omniglot`` dataset is known here.
KNOWN_CHECKSUMS: dict[str, tuple[str, str]] = {
    "images_background_small1.zip": (
        "sha256",
        "f38eb80f801274ac2b4dff5b24289016bfaba4a7d5bb50deebf27104ad6cb8a4",
    ),
    "images_background_small2.zip": (
        "sha256",
        "3ccaa407515a8778e5d0861875af38b17e418f301ad5bb3b5a6b65d901a41c7f",
    ),
    "images_background.zip": ("md5", "68d2efa1b9178cc56df9314c21c6e718"),
    "images_evaluation.zip": ("md5", "6b91aef0f799c5bb55b94e3f2daec811"),
}

MINIMAL_SOURCES = ("images_background_small1", "images_background_small2")
LAYOUT = "<root>/<source>.zip or <root>/<source>/<Alphabet>/characterNN/*.png"


def default_root() -> Path:
    """The per-user data folder: ``$FASTADAPT_DATA/omniglot`` if set, else
    ``$XDG_CACHE_HOME/fastadapt/omniglot`` (``~/.cache/fastadapt/omniglot``)."""
    env = os.environ.get("FASTADAPT_DATA")
    if env:
        return Path(env).expanduser() / "omniglot"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "fastadapt" / "omniglot"


# ----------------------------------------------------------------------------------------------------
# download helper (for users; tests use local files only)


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file (streamed)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_file(path: str | Path, algorithm: str, expected: str) -> None:
    """Raise DataError unless ``path`` has the ``algorithm`` digest ``expected``."""
    got = file_digest(path, algorithm)
    if got.lower() != expected.lower():
        raise DataError(f"checksum mismatch: {path} has {algorithm} {got}, expected {expected}")


def _open_range(url: str, offset: int, timeout: float) -> tuple[io.RawIOBase, bool]:
    """Open ``url`` at byte ``offset``; returns (stream, resumed). file:// URLs seek locally."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme in ("", "file"):
        f = open(urllib.request.url2pathname(parsed.path), "rb")  # noqa: SIM115
        f.seek(offset)
        return f, True  # type: ignore[return-value]
    req = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    resp = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 (user-requested download)
    return resp, offset > 0 and getattr(resp, "status", 200) == 206


def download_file(
    url: str,
    dest: str | Path,
    checksum: tuple[str, str] | None = None,
    chunk_size: int = 1 << 16,
    timeout: float = 60.0,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Download ``url`` to ``dest``, resuming ``dest + ".part"`` if present, then verify ``checksum``.

    ``checksum`` is ``(algorithm, hex)`` (e.g. ``("sha256", "...")``). On a mismatch the partial file is
    deleted and DataError is raised (nothing is left at ``dest``); the final rename is atomic.
    ``progress(bytes_so_far)`` is called after every chunk.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    try:
        stream, resumed = _open_range(url, offset, timeout)
    except OSError as e:
        raise DataError(f"download of {url} failed: {e}") from None
    mode = "ab" if resumed else "wb"
    done = offset if resumed else 0
    try:
        with stream, open(part, mode) as out:
            while True:
                buf = stream.read(chunk_size)
                if not buf:
                    break
                out.write(buf)
                done += len(buf)
                if progress is not None:
                    progress(done)
    except OSError as e:
        raise DataError(f"download of {url} interrupted at {done} bytes ({e}); run again to resume") from None
    if checksum is not None:
        try:
            verify_file(part, *checksum)
        except DataError as e:
            part.unlink(missing_ok=True)
            raise DataError(f"{e} (download from {url} refused and deleted)") from None
    os.replace(part, dest)
    return dest


def download_omniglot(
    root: str | Path | None = None,
    sources: Sequence[str] = ("images_background", "images_evaluation"),
    base_url: str = BASE_URL,
    progress: Callable[[int], None] | None = None,
) -> list[Path]:
    """Fetch the official Omniglot zips into ``root`` (default :func:`default_root`).

    Files already present with the right checksum are kept; a ``.part`` file is resumed. Returns the
    zip paths. Example: ``download_omniglot("~/data/omniglot", MINIMAL_SOURCES)``.
    """
    root = Path(root).expanduser() if root is not None else default_root()
    out: list[Path] = []
    for src in sources:
        name = f"{src}.zip"
        dest = root / name
        checksum = KNOWN_CHECKSUMS.get(name)
        if dest.exists():
            if checksum is None:
                out.append(dest)
                continue
            try:
                verify_file(dest, *checksum)
                out.append(dest)
                continue
            except DataError:
                dest.unlink()
        out.append(download_file(base_url + name, dest, checksum, progress=progress))
    return out


# ----------------------------------------------------------------------------------------------------
# reading the official layout


@dataclass(frozen=True)
class OmniglotImage:
    """One raw image file: ``alphabet``, ``character`` (``characterNN``), ``filename`` (``CCCC_DD.png``,
    DD = drawer), the ``source`` it came from and its PNG bytes."""

    alphabet: str
    character: str
    filename: str
    source: str
    data: bytes

    @property
    def drawer(self) -> int:
        """The drawer number DD of ``CCCC_DD.png`` (0 if the name does not follow the convention)."""
        stem = self.filename.rsplit(".", 1)[0]
        tail = stem.rsplit("_", 1)[-1]
        return int(tail) if tail.isdigit() else 0


def _layout_error(where: str, found: Sequence[str]) -> DataError:
    shown = ", ".join(found[:3]) or "nothing"
    return DataError(
        f"omniglot: {where} is not laid out as <Alphabet>/characterNN/*.png (found e.g. {shown}); "
        f"expected {LAYOUT}"
    )


def _scan_zip(path: Path, source: str) -> list[OmniglotImage]:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"omniglot: {path} is not a readable zip ({e}); truncated download?") from None
    out: list[OmniglotImage] = []
    with zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
        for n in names:
            parts = [p for p in n.split("/") if p]
            if not parts[-1].lower().endswith(".png"):
                continue
            if len(parts) == 4 and parts[0] == source:
                parts = parts[1:]
            if len(parts) != 3:
                raise _layout_error(f"{path} (entry {n})", names)
            try:
                data = zf.read(n)
            except (zipfile.BadZipFile, OSError, EOFError) as e:
                raise DataError(f"omniglot: {path} entry {n} is unreadable ({e}); truncated zip?") from None
            out.append(OmniglotImage(parts[0], parts[1], parts[2], source, data))
        if not out:
            raise _layout_error(str(path), names)
    return out


def _scan_folder(path: Path, source: str) -> list[OmniglotImage]:
    out: list[OmniglotImage] = []
    for alpha in sorted(p for p in path.iterdir() if p.is_dir()):
        for char in sorted(p for p in alpha.iterdir() if p.is_dir()):
            for f in sorted(char.glob("*.png")):
                out.append(OmniglotImage(alpha.name, char.name, f.name, source, f.read_bytes()))
    if not out:
        found = sorted(str(p.relative_to(path)) for p in path.rglob("*"))[:3]
        raise _layout_error(str(path), found)
    return out


def scan_omniglot(root: str | Path, sources: Sequence[str]) -> list[OmniglotImage]:
    """All raw images of ``sources`` under ``root`` (folder preferred over zip), deduplicated by
    ``Alphabet/character/filename`` (the first source wins), sorted by alphabet, character, filename."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(
            f"omniglot: data folder {root} does not exist; expected {LAYOUT} there "
            "(set task.root, or fetch the zips with fastadapt.tasks.fewshot.omniglot.download_omniglot)"
        )
    if not sources:
        raise ConfigError("sources: name at least one Omniglot source (e.g. images_background)")
    seen: dict[tuple[str, str, str], OmniglotImage] = {}
    for src in sources:
        folder, zpath = root / src, root / f"{src}.zip"
        if folder.is_dir():
            imgs = _scan_folder(folder, src)
        elif zpath.is_file():
            imgs = _scan_zip(zpath, src)
        else:
            raise DataError(
                f"omniglot: neither {zpath} nor the folder {folder}/ exists; expected {LAYOUT} "
                "(fetch with fastadapt.tasks.fewshot.omniglot.download_omniglot)"
            )
        for im in imgs:
            seen.setdefault((im.alphabet, im.character, im.filename), im)
    return [seen[k] for k in sorted(seen)]


def decode_png(data: bytes, where: str) -> np.ndarray:
    """PNG bytes -> ``[H, W]`` float32 with ink 1.0 and background 0.0; DataError naming ``where``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            arr = np.asarray(im.convert("L"), dtype=np.float32)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"omniglot: image {where} is unreadable ({e}); truncated or not a PNG") from None
    return 1.0 - arr / 255.0


def crop_to_ink(a: np.ndarray, margin: float = 0.1, threshold: float = 0.5) -> np.ndarray:
    """Square crop of an ink image ``a: [H, W]`` (ink 1) centred on the bounding box of its pixels above
    ``threshold``, with side ``(1 + 2 * margin) * max(box height, box width)`` (at least 8 px), zero-padded
    where the square leaves the canvas. An image without ink is returned unchanged."""
    if a.ndim != 2:
        raise ValueError(f"crop_to_ink: expected an [H, W] image, got shape {a.shape}")
    ys, xs = np.nonzero(a > threshold)
    if ys.size == 0:
        return a
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    side = max(8, int(round(max(y1 - y0, x1 - x0) * (1.0 + 2.0 * margin))))
    top = (y0 + y1 - side) // 2
    left = (x0 + x1 - side) // 2
    out = np.zeros((side, side), dtype=a.dtype)
    sy0, sx0 = max(top, 0), max(left, 0)
    sy1, sx1 = min(top + side, a.shape[0]), min(left + side, a.shape[1])
    out[sy0 - top:sy1 - top, sx0 - left:sx1 - left] = a[sy0:sy1, sx0:sx1]
    return out


def images_to_tensor(arrays: Sequence[np.ndarray], image_size: int, crop: bool = False) -> torch.Tensor:
    """Stack ``[H, W]`` ink images (grouped by size) and resize to ``[n, 1, image_size, image_size]``;
    ``crop`` first cuts each to the square around its ink (:func:`crop_to_ink`)."""
    if crop:
        arrays = [crop_to_ink(a) for a in arrays]
    out = torch.empty(len(arrays), 1, image_size, image_size)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, a in enumerate(arrays):
        by_shape.setdefault(a.shape, []).append(i)
    for idx in by_shape.values():
        x = torch.from_numpy(np.stack([arrays[i] for i in idx]))[:, None]
        out[idx] = resize_images(x, image_size)
    return out


_CACHE: dict[tuple[object, ...], ClassDataset] = {}


def load_omniglot(
    root: str | Path | None, sources: Sequence[str] = MINIMAL_SOURCES, image_size: int = 28, crop: bool = False
) -> ClassDataset:
    """Load ``sources`` under ``root`` (default :func:`default_root`) as a :class:`ClassDataset`.

    Returns ``x: [images, 1, image_size, image_size]`` float32 (ink 1), one class per character
    (``"Alphabet/characterNN"``, sorted), grouped by alphabet; ``crop`` as in :func:`images_to_tensor`.
    Cached in-process per (root, sources, size, crop, file modification times).
    """
    root = Path(root).expanduser() if root is not None else default_root()
    stamp = []
    for s in sources:
        for p in (root / s, root / f"{s}.zip"):
            if p.exists():
                stamp.append((str(p), p.stat().st_mtime_ns))
    key = (str(root.resolve()) if root.exists() else str(root), tuple(sources), image_size, crop, tuple(stamp))
    if key in _CACHE:
        return _CACHE[key]
    images = scan_omniglot(root, sources)
    arrays = [
        decode_png(im.data, f"{im.source}/{im.alphabet}/{im.character}/{im.filename}") for im in images
    ]
    x = images_to_tensor(arrays, image_size, crop)
    names: dict[str, int] = {}
    groups: list[str] = []
    labels = []
    for im in images:
        cname = f"{im.alphabet}/{im.character}"
        if cname not in names:
            names[cname] = len(names)
            groups.append(im.alphabet)
        labels.append(names[cname])
    ds = ClassDataset(x, torch.tensor(labels, dtype=torch.int64), list(names), groups)
    _CACHE[key] = ds
    return ds


# ----------------------------------------------------------------------------------------------------
# the registered task


class OmniglotConfig(Section):
    """The ``task:`` section of ``omniglot`` (episodes of handwritten characters).

    ``root`` holds the official zips or unpacked folders (default: a per-user cache folder, see
    :func:`default_root`); ``sources`` names which of them to load. Splits are disjoint sets of
    characters: ``split="alphabet"`` keeps whole alphabets together (``test_alphabets`` /
    ``val_alphabets`` by name, or else ``test_fraction`` / ``val_fraction`` of the alphabets drawn with
    ``split_seed``); ``split="character"`` draws single characters; ``split="sources"`` puts the
    alphabets of the last source into the test split (``images_background`` + ``images_evaluation`` is
    the usual background/evaluation protocol). ``way``/``shot``/``query`` shape the meta-training
    episodes; ``rotations`` adds the 90/180/270-degree rotations of every training character as new
    classes (``rotate_eval`` also for val/test). ``crop`` cuts every image to the square around its ink
    before resizing (:func:`crop_to_ink`; the Omniglot runs are then read the same way).
    """

    root: str | None = None
    sources: list[str] = Field(default_factory=lambda: list(MINIMAL_SOURCES), min_length=1)
    image_size: int = Field(28, ge=8, le=105)
    way: int = Field(5, ge=2)
    shot: int = Field(1, ge=1)
    query: int = Field(15, ge=1)
    rotations: bool = True
    rotate_eval: bool = False
    split: Literal["alphabet", "character", "sources"] = "alphabet"
    test_alphabets: list[str] = Field(default_factory=list)
    val_alphabets: list[str] = Field(default_factory=list)
    test_fraction: float = Field(0.25, ge=0.0, lt=1.0)
    val_fraction: float = Field(0.0, ge=0.0, lt=1.0)
    split_seed: int = Field(0, ge=0)
    crop: bool = False

    @field_validator("sources", "test_alphabets", "val_alphabets", mode="before")
    @classmethod
    def _wrap_scalar(cls, v: object) -> object:
        return [v] if isinstance(v, str) else v


def omniglot_splits(cfg: OmniglotConfig, ds: ClassDataset, images: list[OmniglotImage] | None = None
                    ) -> dict[str, list[int]]:
    """The class splits ``cfg`` asks for (see :class:`OmniglotConfig`)."""
    if cfg.split == "alphabet":
        if cfg.test_alphabets or cfg.val_alphabets:
            return split_by_groups(ds, cfg.test_alphabets, cfg.val_alphabets)
        return split_by_fraction(ds, cfg.val_fraction, cfg.test_fraction, cfg.split_seed, by="group")
    if cfg.split == "character":
        return split_by_fraction(ds, cfg.val_fraction, cfg.test_fraction, cfg.split_seed, by="class")
    if len(cfg.sources) < 2:
        raise ConfigError("split: 'sources' needs at least two sources (the last one is the test split)")
    root = Path(cfg.root).expanduser() if cfg.root else default_root()
    last = {im.alphabet for im in scan_omniglot(root, cfg.sources[-1:])}
    first = {im.alphabet for im in scan_omniglot(root, cfg.sources[:-1])}
    test = sorted(last - first)
    if not test:
        raise ConfigError(f"split: source {cfg.sources[-1]!r} adds no new alphabet for the test split")
    return split_by_groups(ds, test, [a for a in cfg.val_alphabets if a not in test])


@register_task("omniglot", family="fewshot", config=OmniglotConfig)
def build_omniglot(cfg: OmniglotConfig) -> FewShotTasks:
    """Omniglot handwritten characters (Lake et al. 2015) as N-way K-shot episodes."""
    ds = load_omniglot(cfg.root, cfg.sources, cfg.image_size, cfg.crop)
    splits = omniglot_splits(cfg, ds)
    root = str(Path(cfg.root).expanduser()) if cfg.root else str(default_root())
    return FewShotTasks(
        "omniglot",
        ds,
        splits,
        cfg.way,
        cfg.shot,
        cfg.query,
        rotations=cfg.rotations,
        rotate_eval=cfg.rotate_eval,
        info={"root": root, "sources": list(cfg.sources), "image_size": cfg.image_size, "crop": cfg.crop},
    )
