"""Image sources: folders, IDX, .npz and the bundled sample -> exact uint8 tensors."""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from descent.cli import main
from descent.data import images, limits
from descent.data.images import ImageData, load_images, read_image_file, to_grey
from descent.errors import ConfigError, DataError

RNG = np.random.default_rng(0)


def digit(i: int, size: tuple[int, int] = (28, 28)) -> np.ndarray:
    """A random uint8 image whose first pixel is its id i, so every image can be traced."""
    a = RNG.integers(0, 256, size=size, dtype=np.uint8)  # (h, w)
    a[0, 0] = i
    return a


def save_png(path: Path, a: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)


def make_folder(root: Path, counts: dict[str, int], start: int = 0) -> dict[int, tuple]:
    """root/<label>/<k>.png for each label -> {id: (label, pixels)}."""
    made, i = {}, start
    for label, n in counts.items():
        for k in range(n):
            a = digit(i)
            save_png(root / label / f"{k}.png", a)
            made[i] = (label, a)
            i += 1
    return made


def ids(x: torch.Tensor) -> list[int]:
    return x[:, 0, 0].tolist()


def check_exact(data: ImageData, made: dict[int, tuple], part: str = "train") -> None:
    """Every image in `part` equals the one written, and carries its label."""
    xs, ys = getattr(data, f"{part}_x"), getattr(data, f"{part}_y")
    assert xs.dtype == torch.uint8 and ys.dtype == torch.int64
    for x, y in zip(xs, ys, strict=True):
        label, a = made[int(x[0, 0])]
        assert np.array_equal(x.numpy(), a)
        assert data.labels[int(y)] == label


# --- folders ----------------------------------------------------------------------------


def test_train_valid_folders_round_trip(tmp_path: Path) -> None:
    train = make_folder(tmp_path / "train", {"7": 3, "3": 4})
    valid = make_folder(tmp_path / "valid", {"3": 2, "7": 2}, start=100)
    (tmp_path / "labels.csv").write_text("name,label\n")
    (tmp_path / "train" / "3" / ".DS_Store").write_bytes(b"\x00junk")
    (tmp_path / "train" / "3" / "notes.txt").write_text("not an image")
    save_png(tmp_path / "train" / ".ipynb_checkpoints" / "x.png", digit(250, (5, 5)))
    data = load_images(tmp_path)
    assert data.labels == ["3", "7"]
    assert data.size == (28, 28) and data.split == "folder valid/"
    assert data.train_x.shape == (7, 28, 28) and data.valid_x.shape == (4, 28, 28)
    check_exact(data, train, "train")
    check_exact(data, valid, "valid")
    assert "4 valid" in repr(data)


def test_training_testing_names_and_classes(tmp_path: Path) -> None:
    make_folder(tmp_path / "training", {"1": 2, "2": 2, "10": 2})
    made = make_folder(tmp_path / "testing", {"10": 1, "2": 1}, start=50)
    data = load_images(tmp_path)
    assert data.labels == ["1", "2", "10"]  # natural order
    assert data.split == "folder testing/"
    sub = load_images(tmp_path, classes=["10", "2"])
    assert sub.labels == ["2", "10"]
    assert sorted(sub.train_y.tolist()) == [0, 0, 1, 1]
    check_exact(sub, made, "valid")


def test_label_folders_seeded_split(tmp_path: Path) -> None:
    made = make_folder(tmp_path, {"cat": 10, "dog": 10})
    a, b = load_images(tmp_path, seed=1), load_images(tmp_path, seed=1)
    c = load_images(tmp_path, seed=2)
    assert a.split == "random 20% (seed 1)" and len(a.valid_y) == 4
    assert ids(a.valid_x) == ids(b.valid_x) and ids(a.train_x) == ids(b.train_x)
    assert ids(a.valid_x) != ids(c.valid_x)
    assert set(ids(a.train_x)).isdisjoint(ids(a.valid_x))
    assert sorted(ids(a.train_x) + ids(a.valid_x)) == sorted(made)
    check_exact(a, made, "train")
    check_exact(a, made, "valid")
    none = load_images(tmp_path, valid_pct=0)
    assert none.valid_x.shape == (0, 28, 28) and none.valid_y.shape == (0,)


def test_train_without_valid_is_split(tmp_path: Path) -> None:
    make_folder(tmp_path / "train", {"3": 5, "7": 5})
    data = load_images(tmp_path, valid_pct=0.3)
    assert (len(data.train_y), len(data.valid_y)) == (7, 3)
    assert data.split.startswith("random 30%")


def test_colour_modes_become_grey(tmp_path: Path) -> None:
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[1, 1] = (255, 255, 255)
    assert to_grey(Image.fromarray(rgb)).tolist() == [[76, 0], [0, 255]]  # ITU-R 601 luma
    rgba = np.full((1, 3, 4), 200, np.uint8)
    rgba[0, :, 3] = (0, 255, 128)  # transparent, opaque, half: composited onto black
    assert to_grey(Image.fromarray(rgba, "RGBA")).tolist() == [[0, 200, 100]]
    la = Image.fromarray(rgba[..., [0, 3]], "LA")
    assert to_grey(la).tolist() == [[0, 200, 100]]
    pal = Image.fromarray(rgb).convert("P")
    assert to_grey(pal).tolist() == [[76, 0], [0, 255]]
    clear = Image.fromarray(np.array([[0, 1]], np.uint8), "P")
    clear.putpalette([255, 255, 255] * 2)
    clear.info["transparency"] = 0  # palette entry 0 is transparent -> black
    assert to_grey(clear).tolist() == [[0, 255]]
    bilevel = Image.fromarray(np.array([[0, 255]], np.uint8)).convert("1")
    assert to_grey(bilevel).tolist() == [[0, 255]]
    deep = Image.fromarray(np.array([[0, 257 * 100, 65535]], np.uint16))
    assert deep.mode.startswith("I;16") and to_grey(deep).tolist() == [[0, 100, 255]]
    # a folder of mixed modes loads as one greyscale uint8 stack
    grey = digit(1, (4, 4))
    save_png(tmp_path / "a" / "l.png", grey)
    save_png(tmp_path / "a" / "rgb.png", np.dstack([grey] * 3))
    save_png(tmp_path / "b" / "rgba.png", np.dstack([grey] * 3 + [np.full_like(grey, 255)]))
    data = load_images(tmp_path, valid_pct=0)
    assert all(np.array_equal(x.numpy(), grey) for x in data.train_x)


# --- errors in folders ------------------------------------------------------------------


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope.*no such file or folder.*mnist-sample"):
        load_images(tmp_path / "nope")


@pytest.mark.parametrize("damage", ["random", "truncated"])
def test_corrupt_image_names_file(tmp_path: Path, damage: str) -> None:
    make_folder(tmp_path, {"3": 2, "7": 2})
    bad = tmp_path / "7" / "x.png"
    if damage == "random":
        bad.write_bytes(RNG.integers(0, 256, 300, dtype=np.uint8).tobytes())
    else:
        save_png(bad, digit(9, (64, 64)))
        bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    with pytest.raises(DataError, match=r"x\.png: cannot read this image"):
        load_images(tmp_path)


def test_size_mismatch_names_both(tmp_path: Path) -> None:
    make_folder(tmp_path, {"3": 2, "7": 1})
    save_png(tmp_path / "7" / "odd.png", digit(5, (30, 28)))
    with pytest.raises(DataError, match=r"odd\.png: image is 30x28.*3/0\.png is 28x28"):
        load_images(tmp_path)


def test_empty_folders(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"{tmp_path}: no label folders"):
        load_images(tmp_path)
    save_png(tmp_path / "loose.png", digit(1))
    with pytest.raises(DataError, match="holds images directly"):
        load_images(tmp_path)
    make_folder(tmp_path, {"3": 1})
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match=r"7: label folder has no image files"):
        load_images(tmp_path)


def test_valid_label_not_in_train(tmp_path: Path) -> None:
    make_folder(tmp_path / "train", {"3": 1, "7": 1})
    make_folder(tmp_path / "valid", {"3": 1, "8": 1})
    with pytest.raises(DataError, match=r"valid/8: validation label '8'.*\['3', '7'\]"):
        load_images(tmp_path)


def test_class_selection_errors(tmp_path: Path) -> None:
    make_folder(tmp_path, {"3": 2, "7": 2})
    with pytest.raises(DataError, match=r"no label '9'; the labels are \['3', '7'\]"):
        load_images(tmp_path, classes=["3", "9"])
    with pytest.raises(DataError, match="at least 2"):
        load_images(tmp_path, classes=["3"])
    with pytest.raises(ConfigError, match="list of label names"):
        load_images(tmp_path, classes="37")
    for pct in (-0.1, 1.0, 1.5):
        with pytest.raises(ConfigError, match=r"--valid-pct must be in \[0, 1\)"):
            load_images(tmp_path, valid_pct=pct)


# --- MNIST IDX ----------------------------------------------------------------------------


def idx_bytes(a: np.ndarray) -> bytes:
    magic = 0x0800 | a.ndim  # ubyte data, ndim dimensions
    return struct.pack(f">I{a.ndim}I", magic, *a.shape) + a.astype(np.uint8).tobytes()


def write_idx(folder: Path, name: str, a: np.ndarray, gz: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(idx_bytes(a)) if gz else idx_bytes(a))
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path: Path, gz: bool) -> None:
    x = RNG.integers(0, 256, (6, 5, 4), dtype=np.uint8)
    y = np.array([0, 1, 2, 1, 0, 2], np.uint8)
    vx = RNG.integers(0, 256, (3, 5, 4), dtype=np.uint8)
    vy = np.array([2, 0, 1], np.uint8)
    write_idx(tmp_path, "train-images-idx3-ubyte", x, gz)
    write_idx(tmp_path, "train-labels-idx1-ubyte", y, gz)
    write_idx(tmp_path, "t10k-images.idx3-ubyte", vx, not gz)  # the dotted variant
    write_idx(tmp_path, "t10k-labels.idx1-ubyte", vy, not gz)
    data = load_images(tmp_path)
    assert data.labels == ["0", "1", "2"] and data.size == (5, 4)
    assert np.array_equal(data.train_x.numpy(), x) and data.train_y.tolist() == y.tolist()
    assert np.array_equal(data.valid_x.numpy(), vx) and data.valid_y.tolist() == vy.tolist()
    assert data.split == "files t10k-*"
    data.train_x[0, 0, 0] = 1  # writable memory, not a read-only view of the file bytes


def test_idx_without_t10k_is_split(tmp_path: Path) -> None:
    write_idx(tmp_path, "train-images-idx3-ubyte", np.zeros((10, 2, 2), np.uint8), True)
    write_idx(tmp_path, "train-labels-idx1-ubyte", np.arange(10) % 2, True)
    data = load_images(tmp_path, valid_pct=0.5)
    assert (len(data.train_y), len(data.valid_y)) == (5, 5)


def test_idx_errors(tmp_path: Path) -> None:
    x = np.zeros((4, 3, 3), np.uint8)
    images = write_idx(tmp_path, "train-images-idx3-ubyte", x, False)
    with pytest.raises(
        DataError, match="train-images-idx3-ubyte: found, but no train-labels-idx1-ubyte"
    ):
        load_images(tmp_path)
    labels = write_idx(tmp_path, "train-labels-idx1-ubyte", np.zeros(5, np.uint8), False)
    with pytest.raises(DataError, match="4 images but .*train-labels-idx1-ubyte has 5 labels"):
        load_images(tmp_path)
    labels.write_bytes(idx_bytes(np.zeros(4, np.uint8))[:-1])
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte: 11 bytes .* says 12"):
        load_images(tmp_path)
    labels.write_bytes(idx_bytes(np.zeros(4, np.uint8)))
    images.write_bytes(idx_bytes(np.zeros((4, 9), np.uint8)))  # 2-D: magic 0x802
    with pytest.raises(DataError, match=r"images-idx3-ubyte: not an MNIST IDX.*0x00000802"):
        load_images(tmp_path)
    images.unlink()
    gz = write_idx(tmp_path, "train-images-idx3-ubyte", x, True)
    gz.write_bytes(gz.read_bytes()[:20])
    with pytest.raises(DataError, match=r"idx3-ubyte\.gz: cannot read"):
        load_images(tmp_path)


# --- .npz -----------------------------------------------------------------------------


def test_npz_forms(tmp_path: Path) -> None:
    x = RNG.integers(0, 256, (10, 4, 4), dtype=np.uint8)
    y = np.array(["b", "a"] * 5)
    np.savez(tmp_path / "a.npz", x=x, y=y)
    data = load_images(tmp_path / "a.npz", valid_pct=0)
    assert data.labels == ["a", "b"] and np.array_equal(data.train_x.numpy(), x)
    assert data.train_y.tolist() == [1, 0] * 5
    np.savez(tmp_path / "flat.npz", x=x.reshape(10, 16), y=np.arange(10) % 3)
    data = load_images(tmp_path / "flat.npz", valid_pct=0)
    assert np.array_equal(data.train_x.numpy(), x) and data.labels == ["0", "1", "2"]
    np.savez(tmp_path / "unit.npz", x=x / 255.0, y=y)  # floats in [0, 1] -> * 255
    assert np.array_equal(load_images(tmp_path / "unit.npz", valid_pct=0).train_x.numpy(), x)
    np.savez(tmp_path / "f255.npz", x=x.astype(np.float32), y=y)  # floats in [0, 255]
    assert np.array_equal(load_images(tmp_path / "f255.npz", valid_pct=0).train_x.numpy(), x)
    data = load_images(tmp_path / "a.npz", valid_pct=0.3, seed=4)
    assert (len(data.train_y), len(data.valid_y)) == (7, 3)


def test_npz_errors(tmp_path: Path) -> None:
    x = np.zeros((3, 2, 2), np.uint8)
    np.savez(tmp_path / "obj.npz", x=x, y=np.array(["a", 1, None], dtype=object))
    with pytest.raises(DataError, match="obj.npz: cannot read x or y .it holds an object array"):
        load_images(tmp_path / "obj.npz")
    np.savez(tmp_path / "nox.npz", images=x, y=[0, 1, 0])
    with pytest.raises(DataError, match=r"nox.npz: no array named x \(it has \['images', 'y'\]"):
        load_images(tmp_path / "nox.npz")
    np.savez(tmp_path / "len.npz", x=x, y=[0, 1])
    with pytest.raises(DataError, match=r"len.npz: y has shape \(2,\) but x has 3 images"):
        load_images(tmp_path / "len.npz")
    np.savez(tmp_path / "flat.npz", x=np.zeros((3, 7)), y=[0, 1, 0])
    with pytest.raises(DataError, match="flat.npz: .*must be square"):
        load_images(tmp_path / "flat.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(DataError, match="junk.npz: not a readable .npz"):
        load_images(tmp_path / "junk.npz")
    (tmp_path / "data.csv").write_text("1,2\n")
    with pytest.raises(DataError, match="data.csv: not a data file"):
        load_images(tmp_path / "data.csv")


# --- bundled sample and single images -----------------------------------------------


def test_bundled_sample() -> None:
    data = load_images("mnist-sample")
    assert data.labels == [str(d) for d in range(10)] and data.size == (28, 28)
    assert data.train_x.dtype == torch.uint8 and data.train_x.shape[1:] == (28, 28)
    assert len(data.train_y) + len(data.valid_y) == 5000 and len(data.valid_y) == 1000
    counts = torch.bincount(torch.cat([data.train_y, data.valid_y]), minlength=10)
    assert counts.tolist() == [500] * 10
    sub = load_images("mnist-sample", classes=["7", "3"])
    assert sub.labels == ["3", "7"] and len(sub.train_y) + len(sub.valid_y) == 1000
    assert set(sub.train_y.tolist()) == {0, 1}
    # the split is made before class selection: the same 3s and 7s are held out
    is37 = (data.valid_y == 3) | (data.valid_y == 7)
    assert torch.equal(sub.valid_x, data.valid_x[is37])


def test_read_image_file(tmp_path: Path) -> None:
    a = digit(3)
    save_png(tmp_path / "d.png", a)
    got = read_image_file(tmp_path / "d.png", (28, 28))
    assert got.dtype == torch.uint8 and np.array_equal(got.numpy(), a)
    save_png(tmp_path / "big.png", digit(3, (56, 40)))
    with pytest.raises(DataError, match=r"big.png: image is 56x40.*expects 28x28"):
        read_image_file(tmp_path / "big.png", (28, 28))
    assert read_image_file(tmp_path / "big.png", (28, 28), resize=True).shape == (28, 28)
    with pytest.raises(DataError, match="missing.png: no such image file"):
        read_image_file(tmp_path / "missing.png", (28, 28))


# --- limits checked before decoding; links and folders that cannot be read ---------------


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every image Pillow decodes (ImageFile.load), so a test can show none was."""
    calls: list[str] = []
    load = ImageFile.ImageFile.load

    def spy(self):
        calls.append(getattr(self, "filename", "?"))
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    return calls


def black_png(path: Path, size: tuple[int, int]) -> Path:
    """A mostly black (w, h) PNG: megapixels that compress to kilobytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.new("L", size)
    im.putpixel((1, 1), 255)
    im.save(path)
    return path


def test_huge_image_refused_before_it_is_decoded(tmp_path: Path, decoded: list[str]) -> None:
    path = black_png(tmp_path / "7" / "huge.png", (12000, 12000))
    make_folder(tmp_path, {"3": 2})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning must not surface
        with pytest.raises(DataError, match=r"huge\.png: image is 12000x12000.*144,000,000"):
            read_image_file(path, (28, 28), resize=True)
        with pytest.raises(DataError, match=r"huge\.png: image is 12000x12000.*Resize it"):
            load_images(tmp_path)
    assert not any(Path(name).name == "huge.png" for name in decoded)


def test_four_9000px_images_refused_before_a_model_is_built(
    tmp_path: Path,
    decoded: list[str],
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Were the pixel limit broken, the memory check would stop this cheaply (and the test fail)
    monkeypatch.setattr(limits, "available_memory", lambda: 2**29)
    one = black_png(tmp_path / "one.png", (9000, 9000))
    for name in ("3/0.png", "3/1.png", "7/0.png", "7/1.png"):
        (tmp_path / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(one, tmp_path / "data" / name)
    code = main(["train", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "3/0.png: image is 9000x9000" in err and "16,777,216" in err
    assert decoded == [] and not (tmp_path / "run" / "model.safetensors").exists()


def test_memory_estimate_refuses_before_decoding(
    tmp_path: Path, decoded: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    make_folder(tmp_path, {"3": 3, "7": 3})
    # 6 images: 2 copies x 6 x 784 bytes of pixels + 4 copies x 4 bytes x 784 x 2 classes
    need = 2 * 6 * 784 + 4 * 4 * 784 * 2
    monkeypatch.setattr(limits, "available_memory", lambda: need - 1)
    with pytest.raises(DataError, match=r"6 images of 28x28 .* would need about 33\.7 KB"):
        load_images(tmp_path)
    assert decoded == []
    monkeypatch.setattr(limits, "available_memory", lambda: need)
    assert len(load_images(tmp_path, valid_pct=0).train_y) == 6
    # with the pixel limit lifted, four 9000x9000 images still do not fit in 1 GB
    monkeypatch.setattr(images, "MAX_PIXELS", 2**27)
    monkeypatch.setattr(limits, "available_memory", lambda: 2**30)
    one = black_png(tmp_path / "one.png", (9000, 9000))
    for name in ("3/0.png", "3/1.png", "7/0.png", "7/1.png"):
        (tmp_path / "big" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(one, tmp_path / "big" / name)
    decoded.clear()
    with pytest.raises(DataError, match=r"4 images of 9000x9000.*1\.0 GB is available.*resize"):
        load_images(tmp_path / "big")
    assert decoded == []


def test_available_memory_is_a_plausible_figure() -> None:
    available = limits.available_memory()
    assert isinstance(available, int) and 2**20 < available < 2**50


def test_pillow_decompression_bomb_is_a_data_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_folder(tmp_path, {"3": 1, "7": 1})
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)  # 784 pixels > 2 x 300: an error
    with pytest.raises(DataError, match=r"0\.png: image is too large to open"):
        load_images(tmp_path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # 784 > 500: only Pillow's warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_images(tmp_path, valid_pct=0).size == (28, 28)


def test_symlink_loops_and_unreadable_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_folder(tmp_path / "data", {"3": 2, "7": 2})
    os.symlink("loop", tmp_path / "data" / "loop")  # loops, and is no label folder: ignored
    assert load_images(tmp_path / "data", valid_pct=0).labels == ["3", "7"]
    os.symlink("b.png", tmp_path / "data" / "7" / "a.png")  # a.png -> b.png -> a.png
    os.symlink("a.png", tmp_path / "data" / "7" / "b.png")
    with pytest.raises(DataError, match=r"7/a\.png: is a symbolic link that loops"):
        load_images(tmp_path / "data")
    os.symlink("itself", tmp_path / "itself")
    with pytest.raises(DataError, match="itself: a symbolic link that loops"):
        load_images(tmp_path / "itself")
    (tmp_path / "data" / "7" / "a.png").unlink()
    (tmp_path / "data" / "7" / "b.png").unlink()
    scandir = os.scandir

    def unreadable(path):
        if Path(path).name == "7":
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", unreadable)
    with pytest.raises(DataError, match=r"7: cannot be read \(Permission denied\)"):
        load_images(tmp_path / "data")
