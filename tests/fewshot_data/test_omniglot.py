"""Omniglot loading: official zip / folder formats, format errors, checksum-verified resumable download,
and the real minimal splits (skipped if absent)."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from fastadapt.core.errors import ConfigError, DataError
from fastadapt.tasks.fewshot.omniglot import (
    OmniglotConfig,
    build_omniglot,
    download_file,
    load_omniglot,
    scan_omniglot,
)

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "omniglot"
REAL_FILES = [REAL / "images_background_small1.zip", REAL / "images_background_small2.zip"]

@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on the shared 2-core machine OpenMP spin-waiting makes 2 threads ~10x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)



def png_bytes(seed: int, size: int = 105) -> bytes:
    """A 105x105 1-bit PNG: white background with a random black rectangle (a stand-in stroke)."""
    import io

    from PIL import Image

    rng = np.random.default_rng(seed)
    a = np.ones((size, size), dtype=bool)
    r, c = rng.integers(10, size - 40, 2)
    a[r : r + 30, c : c + 8] = False
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def make_folder(root: Path, source: str, alphabets: dict[str, int], drawers: int = 3) -> None:
    for a, (alpha, n_chars) in enumerate(alphabets.items()):
        for c in range(1, n_chars + 1):
            d = root / source / alpha / f"character{c:02d}"
            d.mkdir(parents=True)
            for k in range(1, drawers + 1):
                (d / f"{a:02d}{c:02d}_{k:02d}.png").write_bytes(png_bytes(1000 * a + 10 * c + k))


def zip_folder(root: Path, source: str) -> Path:
    z = root / f"{source}.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in sorted((root / source).rglob("*.png")):
            zf.write(p, p.relative_to(root).as_posix())
    return z


def test_folder_and_zip_give_the_same_dataset(tmp_path: Path) -> None:
    make_folder(tmp_path / "a", "images_background", {"Alpha": 3, "Beta": 2})
    ds_folder = load_omniglot(tmp_path / "a", ["images_background"], 28)
    zip_folder(tmp_path / "a", "images_background")
    (tmp_path / "b").mkdir()
    shutil.copy(tmp_path / "a" / "images_background.zip", tmp_path / "b")
    ds_zip = load_omniglot(tmp_path / "b", ["images_background"], 28)
    assert ds_folder.class_names == ds_zip.class_names == [
        "Alpha/character01", "Alpha/character02", "Alpha/character03",
        "Beta/character01", "Beta/character02",
    ]
    assert ds_folder.groups == ["Alpha"] * 3 + ["Beta"] * 2
    assert ds_folder.x.shape == (15, 1, 28, 28)
    assert torch.equal(ds_folder.x, ds_zip.x)
    assert float(ds_folder.x.min()) >= 0.0 and float(ds_folder.x.max()) <= 1.0
    # ink is 1: the black rectangle covers 30*8 of 105*105 pixels
    assert float(ds_folder.x.mean()) == pytest.approx(240 / 105**2, rel=0.05)


def test_duplicate_alphabets_across_sources_load_once(tmp_path: Path) -> None:
    make_folder(tmp_path, "s1", {"Greek": 2, "Only1": 1})
    make_folder(tmp_path, "s2", {"Greek": 2, "Only2": 1})
    imgs = scan_omniglot(tmp_path, ["s1", "s2"])
    assert len(imgs) == 4 * 3
    ds = load_omniglot(tmp_path, ["s1", "s2"], 20)
    assert ds.num_classes == 4 and ds.x.shape == (12, 1, 20, 20)


def test_missing_root_and_source_name_what_is_expected(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_omniglot(tmp_path / "nowhere", ["images_background"])
    with pytest.raises(DataError, match=r"neither .*images_evaluation\.zip nor the folder"):
        load_omniglot(tmp_path, ["images_evaluation"])


def test_wrong_layout_is_a_data_error(tmp_path: Path) -> None:
    d = tmp_path / "images_background" / "Alpha"
    d.mkdir(parents=True)
    (d / "0101_01.png").write_bytes(png_bytes(1))  # no character folder
    with pytest.raises(DataError, match="not laid out as <Alphabet>/characterNN"):
        load_omniglot(tmp_path, ["images_background"])
    with zipfile.ZipFile(tmp_path / "flat.zip", "w") as zf:
        zf.writestr("flat/x.png", png_bytes(2))
    with pytest.raises(DataError, match="not laid out"):
        load_omniglot(tmp_path, ["flat"])


def test_truncated_zip_and_png(tmp_path: Path) -> None:
    make_folder(tmp_path / "src", "images_background", {"Alpha": 2})
    z = zip_folder(tmp_path / "src", "images_background")
    data = z.read_bytes()
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "images_background.zip").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="not a readable zip .*truncated"):
        load_omniglot(tmp_path / "t", ["images_background"])
    bad = tmp_path / "src" / "images_background" / "Alpha" / "character01" / "0001_01.png"
    bad.write_bytes(bad.read_bytes()[:40])
    with pytest.raises(DataError, match="0001_01.png is unreadable"):
        load_omniglot(tmp_path / "src", ["images_background"], 28)


def test_download_verifies_checksum_and_resumes(tmp_path: Path) -> None:
    src = tmp_path / "remote.bin"
    payload = bytes(range(256)) * 300
    src.write_bytes(payload)
    url = src.as_uri()
    good = ("sha256", hashlib.sha256(payload).hexdigest())
    bad = ("sha256", "0" * 64)
    dest = tmp_path / "dl" / "file.zip"
    with pytest.raises(DataError, match="checksum mismatch.*refused"):
        download_file(url, dest, bad)
    assert not dest.exists() and not dest.with_name("file.zip.part").exists()
    # resume: a partial file holding the first part of the bytes is continued, not restarted
    dest.parent.mkdir(exist_ok=True)
    dest.with_name("file.zip.part").write_bytes(payload[:10000])
    seen: list[int] = []
    download_file(url, dest, good, chunk_size=4096, progress=seen.append)
    assert dest.read_bytes() == payload
    assert seen[0] == 10000 + 4096


def test_config_validation() -> None:
    cfg = OmniglotConfig(sources="images_background", test_alphabets="Greek")  # scalars wrapped
    assert cfg.sources == ["images_background"] and cfg.test_alphabets == ["Greek"]
    with pytest.raises(Exception):
        OmniglotConfig(way=1)
    with pytest.raises(Exception):
        OmniglotConfig(bogus=1)


def test_build_task_on_synthetic_folders(tmp_path: Path) -> None:
    make_folder(tmp_path, "images_background", {"A": 3, "B": 3, "C": 3, "D": 3})
    make_folder(tmp_path, "images_evaluation", {"E": 3, "F": 3})
    cfg = OmniglotConfig(
        root=str(tmp_path), sources=["images_background", "images_evaluation"], split="sources",
        way=3, shot=1, query=1, image_size=16,
    )
    tasks = build_omniglot(cfg)
    test_groups = {tasks.dataset.groups[c] for c in tasks.splits["test"]}
    assert test_groups == {"E", "F"}
    ep = tasks.sample(2, seed=0)
    assert ep.support_x.shape == (2, 3, 1, 16, 16)
    with pytest.raises(ConfigError, match="unknown group 'Zulu'"):
        build_omniglot(cfg.model_copy(update={"split": "alphabet", "test_alphabets": ["Zulu"]}))


needs_real = pytest.mark.skipif(
    not all(p.exists() for p in REAL_FILES),
    reason=f"real Omniglot minimal splits not found at {REAL} (images_background_small1.zip, _small2.zip)",
)


@needs_real
def test_real_minimal_splits() -> None:
    ds = load_omniglot(REAL, ["images_background_small1", "images_background_small2"], 28)
    # 8 distinct alphabets (Greek and Latin are in both zips and load once), 20 drawers per character
    assert len(ds.group_names()) == 8
    assert ds.num_classes == 24 + 22 + 24 + 40 + 26 + 47 + 42 + 17
    assert ds.x.shape == (ds.num_classes * 20, 1, 28, 28)
    assert all(ds.count(c) == 20 for c in range(ds.num_classes))
    ink = float(ds.x.mean())
    assert 0.03 < ink < 0.2  # mostly background


@needs_real
def test_real_task_splits_are_disjoint() -> None:
    tasks = build_omniglot(OmniglotConfig(root=str(REAL), test_alphabets=["Korean", "Sanskrit"]))
    tr, te = set(tasks.splits["train"]), set(tasks.splits["test"])
    assert tr and te and not tr & te
    assert {tasks.dataset.groups[c] for c in te} == {"Korean", "Sanskrit"}
    ep = tasks.sample(3, seed=1, split="test", way=20, shot=5, query=5)
    assert ep.support_x.shape == (3, 100, 1, 28, 28)


def test_crop_to_ink_centres_and_fills_the_square() -> None:
    from fastadapt.tasks.fewshot.omniglot import crop_to_ink, images_to_tensor

    a = np.zeros((105, 105), np.float32)
    a[10:30, 60:100] = 1.0  # a 20 x 40 ink box near the top right
    c = crop_to_ink(a, margin=0.1)
    assert c.shape == (48, 48)  # 1.2 * 40
    ys, xs = np.nonzero(c > 0.5)
    assert (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1) == (14, 34, 4, 44)  # centred in the square
    assert c.sum() == a.sum()  # nothing cut off, nothing added
    # a box at the canvas edge is zero-padded, not shifted
    b = np.zeros((105, 105), np.float32)
    b[0:50, 0:10] = 1.0
    cb = crop_to_ink(b, margin=0.1)
    assert cb.shape == (60, 60) and cb.sum() == b.sum() and cb[:5].sum() == 0
    blank = np.zeros((105, 105), np.float32)
    assert crop_to_ink(blank) is blank
    with pytest.raises(ValueError, match="H, W"):
        crop_to_ink(np.zeros((1, 105, 105), np.float32))
    # the same character placed anywhere on the canvas gives the same cropped 28x28 image
    shifted = np.roll(np.roll(a, 40, axis=0), -50, axis=1)
    t = images_to_tensor([a, shifted], 28, crop=True)
    assert t.shape == (2, 1, 28, 28) and torch.allclose(t[0], t[1])
    assert not torch.allclose(*images_to_tensor([a, shifted], 28))
