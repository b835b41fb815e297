"""The official Omniglot one-shot runs format: builder -> loader round trip, format errors, determinism."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from fastadapt.core.errors import ConfigError, DataError
from fastadapt.tasks.fewshot.omniglot import OmniglotImage, decode_png, scan_omniglot
from fastadapt.tasks.fewshot.omniglot_runs import build_runs, load_runs, runs_accuracy

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "omniglot"

@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on the shared 2-core machine OpenMP spin-waiting makes 2 threads ~10x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)



def png(seed: int) -> bytes:
    import io

    from PIL import Image

    rng = np.random.default_rng(seed)
    a = rng.random((105, 105)) > 0.1
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def fake_images(alphabets: dict[str, int], drawers: int = 4) -> list[OmniglotImage]:
    out = []
    for a, (alpha, n) in enumerate(alphabets.items()):
        for c in range(1, n + 1):
            for d in range(1, drawers + 1):
                out.append(OmniglotImage(alpha, f"character{c:02d}", f"{a:02d}{c:02d}_{d:02d}.png", "src",
                                         png(10000 * a + 100 * c + d)))
    return out


def test_build_then_load_round_trip(tmp_path: Path) -> None:
    images = fake_images({"A": 6, "B": 5, "C": 3})
    folder = build_runs(images, tmp_path / "runs", ["A", "B", "C"], n_runs=3, way=5, seed=1)
    meta = json.loads((folder / "runs.json").read_text())["runs"]
    assert [m["alphabet"] for m in meta] == ["A", "B", "A"]  # C has too few characters for 5-way
    lines = (folder / "run01" / "class_labels.txt").read_text().splitlines()
    assert lines[0].startswith("run01/test/item01.png run01/training/class")
    runs = load_runs(folder, image_size=28)
    assert runs.names == ["run01", "run02", "run03"] and runs.way == 5
    ep = runs.episode
    assert ep.support_x.shape == (3, 5, 1, 28, 28) and ep.query_x.shape == (3, 5, 1, 28, 28)
    assert torch.equal(ep.support_y[0], torch.arange(5))
    # every item is labelled with the class of the same character, drawn by the other drawer
    lookup = {im.data: im for im in images}
    for r, m in enumerate(meta):
        for item_file, y in zip(runs.query_files[r], ep.query_y[r].tolist()):
            item = lookup[Path(item_file).read_bytes()]
            cls = lookup[Path(runs.support_files[r][y]).read_bytes()]
            assert item.character == cls.character and item.alphabet == cls.alphabet == m["alphabet"]
            assert item.drawer == m["test_drawer"] and cls.drawer == m["train_drawer"]
    # an oracle that knows the answer scores 1, a constant guess 1/way
    assert runs_accuracy(ep.query_y, runs).tolist() == [1.0, 1.0, 1.0]
    assert runs_accuracy(torch.zeros_like(ep.query_y), runs).mean() == pytest.approx(0.2)


def test_builder_is_seeded(tmp_path: Path) -> None:
    images = fake_images({"A": 8})
    a = build_runs(images, tmp_path / "a", ["A"], n_runs=2, way=4, seed=3)
    b = build_runs(images, tmp_path / "b", ["A"], n_runs=2, way=4, seed=3)
    assert (a / "runs.json").read_text() == (b / "runs.json").read_text()
    assert (a / "run02" / "class_labels.txt").read_text() == (b / "run02" / "class_labels.txt").read_text()
    with pytest.raises(ConfigError, match="has 20 characters"):
        build_runs(images, tmp_path / "c", ["A"], way=20)
    with pytest.raises(ConfigError, match="'Z' not among"):
        build_runs(images, tmp_path / "c", ["Z"], way=4)


def test_all_runs_subfolder_is_accepted(tmp_path: Path) -> None:
    build_runs(fake_images({"A": 5}), tmp_path / "all_runs", ["A"], n_runs=1, way=5)
    assert load_runs(tmp_path).names == ["run01"]


def make_runs(tmp_path: Path) -> Path:
    return build_runs(fake_images({"A": 5}), tmp_path / "runs", ["A"], n_runs=2, way=5, seed=0)


def test_format_errors_name_the_culprit(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_runs(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no run01.. folders"):
        load_runs(tmp_path / "empty")

    folder = make_runs(tmp_path)
    labels = folder / "run02" / "class_labels.txt"
    good = labels.read_text()
    labels.write_text("run02/test/item01.png\n")
    with pytest.raises(DataError, match="class_labels.txt line 1 should read"):
        load_runs(folder)
    labels.write_text(good.replace("item01.png", "item99.png", 1))
    with pytest.raises(DataError, match="line 1 names missing file .*item99.png"):
        load_runs(folder)
    labels.write_text(good.replace("run02/training/class", "run01/training/class", 1))
    with pytest.raises(DataError, match="not a training image of run02"):
        load_runs(folder)
    labels.unlink()
    with pytest.raises(DataError, match="run02/class_labels.txt is missing"):
        load_runs(folder)
    labels.write_text(good)
    (folder / "run02" / "training" / "class05.png").unlink()
    with pytest.raises(DataError):
        load_runs(folder)


def test_truncated_image_is_a_data_error(tmp_path: Path) -> None:
    folder = make_runs(tmp_path)
    p = folder / "run01" / "test" / "item03.png"
    p.write_bytes(p.read_bytes()[:30])
    with pytest.raises(DataError, match="item03.png is unreadable"):
        load_runs(folder)


def test_unequal_runs_are_rejected(tmp_path: Path) -> None:
    folder = make_runs(tmp_path)
    other = build_runs(fake_images({"A": 5}), tmp_path / "small", ["A"], n_runs=1, way=4, seed=0)
    shutil.rmtree(folder / "run02")
    shutil.copytree(other / "run01", folder / "run02")
    txt = (folder / "run02" / "class_labels.txt").read_text().replace("run01/", "run02/")
    (folder / "run02" / "class_labels.txt").write_text(txt)
    with pytest.raises(DataError, match="runs must have equal sizes"):
        load_runs(folder)


@pytest.mark.skipif(not (REAL / "images_background_small1.zip").exists(),
                    reason=f"real Omniglot minimal splits not found at {REAL}")
def test_runs_from_real_held_out_alphabets(tmp_path: Path) -> None:
    images = scan_omniglot(REAL, ["images_background_small1", "images_background_small2"])
    folder = build_runs(images, tmp_path / "runs", ["Korean", "Sanskrit"], n_runs=2, seed=0)
    runs = load_runs(folder, 28)
    assert runs.episode.support_x.shape == (2, 20, 1, 28, 28)
    # images are copied unchanged, ink stays in [0, 1]
    first = Path(runs.support_files[0][0]).read_bytes()
    assert decode_png(first, "x").shape == (105, 105)
    assert 0.0 <= float(runs.episode.query_x.min()) and float(runs.episode.query_x.max()) <= 1.0
