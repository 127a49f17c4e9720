"""Image sources -> uint8 tensors: folders of image files, MNIST IDX files, .npz, bundled sample.

`load_images(source)` recognises, in this order:

1. ``"mnist-sample"``: 5,000 MNIST digits (500 per digit, 28x28) bundled with descent.
2. A ``.npz`` file with ``x`` (n, h, w) or (n, h*w) and ``y`` (n,) labels (ints or strings).
3. A folder holding ``train-images-idx3-ubyte`` (or ``train-images.idx3-ubyte``, either may
   end in ``.gz``) and its labels: MNIST IDX files; ``t10k-*`` files, if present, are the
   validation set.
4. A folder with ``train/<label>/*`` (or ``training/``) and a validation folder, the first of
   ``valid/``, ``validation/``, ``test/``, ``testing/`` that exists (fastai's MNIST_SAMPLE,
   the mnist_png layout). Without one, the validation set is split from train by valid_pct.
5. A folder with ``<label>/*`` folders only.

Rules that hold for every source:
- Pixels stay uint8 (0-255) in storage; models convert per batch.
- Labels are names (str) sorted naturally ("2" < "10"); `train_y`/`valid_y` index them.
- Where no validation set is given, a seeded random permutation of all images (not
  stratified) puts round(n * valid_pct) of them in validation. The split is made before
  `classes` selects labels, so an image is in validation for ["3", "7"] exactly when it is
  for all ten digits.
- Image files (.png .jpg .jpeg .bmp .gif .tif .tiff .webp, any case) are read with Pillow
  and made greyscale by `to_grey` (rules there); other files and hidden ones (".*") are
  ignored, and only files directly inside a label folder count. All images must have one size.
- Limits are checked before pixels are decoded: each image's header against MAX_PIXELS, and
  for a folder, the first image's size times the number of files (plus the linear model's
  training state) against the memory available (limits.check_fits). A symbolic link that loops
  or a folder that cannot be listed is a DataError naming it.
"""

from __future__ import annotations

import errno
import gzip
import os
import re
import struct
import warnings
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from descent.data.limits import check_fits
from descent.errors import ConfigError, DataError
from descent.options import check_valid_pct

__all__ = [
    "ImageData",
    "load_images",
    "read_image_file",
    "to_grey",
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
]

BUNDLED = "mnist-sample"
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
TRAIN_DIRS = ("train", "training")
VALID_DIRS = ("valid", "validation", "test", "testing")  # the first that exists wins
IDX_MAGIC = {"images": 0x00000803, "labels": 0x00000801}  # ubyte data, 3 or 1 dimensions
# 2**24 pixels (4096x4096) per image: a pixel classifier has one weight per pixel per class,
# so a larger image makes a model of hundreds of millions of weights that no gradient-descent
# course needs (MNIST is 784 pixels), and decoding it takes gigabytes before anything is
# checked. Pillow's own decompression-bomb limit (about 89M pixels) is far above this.
MAX_PIXELS = 2**24
LAYOUTS = (
    "'mnist-sample', a .npz file with x and y, a folder of MNIST IDX files, "
    "a folder with train/<label>/ and valid/<label>/ image folders, or a folder of <label>/ folders"
)


@dataclass(repr=False)
class ImageData:
    """Images and labels held in memory, split into training and validation."""

    train_x: torch.Tensor  # (n, h, w) uint8
    train_y: torch.Tensor  # (n,) int64, indices into labels
    valid_x: torch.Tensor  # (m, h, w) uint8; m may be 0
    valid_y: torch.Tensor  # (m,) int64
    labels: list[str]  # class names, sorted naturally
    source: str  # where the images came from
    size: tuple[int, int]  # (h, w)
    split: str  # how validation was made: "folder valid/", "random 20% (seed 0)", ...

    def __repr__(self) -> str:
        h, w = self.size
        return (
            f"ImageData({self.source}: {len(self.train_y)} train, {len(self.valid_y)} valid, "
            f"{h}x{w}, labels {self.labels}, split {self.split})"
        )


def load_images(
    source: str | Path,
    *,
    classes: Sequence[str] | None = None,
    valid_pct: float = 0.2,
    seed: int = 0,
) -> ImageData:
    """Load an image classification set from `source` (see the module docstring for layouts).

    classes: label names to keep (e.g. ["3", "7"]); indices are renumbered 0..k-1 in the
        natural order of the chosen names. An unknown name is a DataError listing the labels.
    valid_pct: share of images put in validation when the source has no validation set;
        must be in [0, 1). Ignored when the source has one.
    seed: seeds that random split; the same seed gives the same split.
    """
    check_valid_pct(valid_pct)
    if isinstance(classes, str):
        raise ConfigError(
            f"classes must be a list of label names such as ['3', '7'], not {classes!r}"
        )
    if str(source) == BUNDLED:
        ref = resources.files("descent.data") / "mnist_sample.npz"
        if not ref.is_file():
            raise DataError(
                f"the bundled {BUNDLED} data (descent/data/mnist_sample.npz) is missing; "
                "reinstall descent or rebuild it with scripts/build_mnist_sample.py"
            )
        with resources.as_file(ref) as path:
            raw = _read_npz(path)
        raw["source"] = f"{BUNDLED} (5,000 MNIST digits bundled with descent)"
    else:
        path = Path(source).expanduser()
        if not path.exists():
            why = "no such file or folder"
            if path.is_symlink():
                why = "a symbolic link that loops" if _loops(path) else "a broken symbolic link"
            raise DataError(f"{path}: {why}; give {LAYOUTS}")
        if path.is_file():
            if path.suffix.lower() != ".npz":
                raise DataError(f"{path}: not a data file descent can read; give {LAYOUTS}")
            raw = _read_npz(path)
        elif _find_idx(path, "train", "images") or _find_idx(path, "train", "labels"):
            raw = _read_idx_folder(path)
        else:
            raw = _read_image_folder(path, classes)
    return _assemble(**raw, classes=classes, valid_pct=valid_pct, seed=seed)


def read_image_file(
    path: str | Path, size: tuple[int, int], *, resize: bool = False
) -> torch.Tensor:
    """One image for prediction -> uint8 tensor (h, w), greyscale as in `to_grey`.

    If the image is not `size` (h, w): a DataError naming both sizes, or, with resize=True,
    a Lanczos resample to exactly `size` (aspect ratio not kept).
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise DataError(f"{path}: is a folder; give the image files in it (e.g. {path}/*.png)")
    if not path.is_file():
        raise DataError(f"{path}: no such image file")
    h, w = size
    grey = _read_grey(path)  # (H, W) uint8
    if grey.shape != (h, w):
        if not resize:
            raise DataError(
                f"{path}: image is {_hw(grey.shape)} but the model expects {_hw((h, w))}; "
                f"resize it to {_hw((h, w))} or ask for resizing (resize=True, --resize)"
            )
        grey = np.asarray(Image.fromarray(grey).resize((w, h), Image.Resampling.LANCZOS))
    return torch.from_numpy(grey.copy())


def to_grey(im: Image.Image) -> np.ndarray:
    """A Pillow image -> uint8 array (h, w), by these rules:

    - L as is; 1 (bilevel) -> 0/255; RGB, CMYK, YCbCr ... -> ITU-R 601 luma (Pillow's "L").
    - Alpha (RGBA, LA, PA, P with transparency): composited onto black, MNIST's background:
      grey = luma * alpha / 255, so transparent pixels are 0 and opaque ones keep their luma.
    - 16-bit (I;16*): scaled to 0-255 (value / 257, rounded).
    - 32-bit I and float F: values taken as 0-255, rounded and clipped.
    - Animated images: the first frame.
    """
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode.startswith("I;16"):
        return np.rint(np.asarray(im, dtype=np.float64) / 257).astype(np.uint8)
    if im.mode in ("I", "F"):
        return np.clip(np.rint(np.asarray(im, dtype=np.float64)), 0, 255).astype(np.uint8)
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        luma = np.asarray(rgba.convert("RGB").convert("L"), dtype=np.uint16)
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.uint16)
        return ((luma * alpha + 127) // 255).astype(np.uint8)  # rounded luma * alpha / 255
    return np.asarray(im if im.mode == "L" else im.convert("L"))


# --- reading image files ---------------------------------------------------------------


def _read_grey(path: Path) -> np.ndarray:
    """Decode one image file fully -> uint8 (h, w). Unreadable, truncated, or above
    MAX_PIXELS (known from the header, before decoding) -> DataError."""
    with _open(path) as im:
        try:
            im.load()  # decode now, so a truncated file fails here
            return to_grey(im)
        except (OSError, ValueError, SyntaxError) as e:
            raise _unreadable(path, e) from e


def _image_size(path: Path) -> tuple[int, int]:
    """(h, w) from the image's header alone; above MAX_PIXELS or unreadable -> DataError."""
    with _open(path) as im:
        return im.size[1], im.size[0]


@contextmanager
def _open(path: Path) -> Iterator[Image.Image]:
    """Image.open (which reads only the header) with its size checked against MAX_PIXELS;
    Pillow's DecompressionBombWarning/Error become a DataError, never a traceback."""
    try:
        with warnings.catch_warnings():  # MAX_PIXELS is far below Pillow's warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except Image.DecompressionBombError as e:
        raise DataError(
            f"{path}: image is too large to open ({e}); descent reads images of up to "
            f"{MAX_PIXELS:,} pixels: resize it (e.g. to 28x28) first"
        ) from None
    except (OSError, ValueError, SyntaxError) as e:
        raise _unreadable(path, e) from e
    with im:
        w, h = im.size
        if w * h > MAX_PIXELS:
            raise DataError(
                f"{path}: image is {_hw((h, w))} = {w * h:,} pixels, above the limit of "
                f"{MAX_PIXELS:,} (4096x4096) per image: a pixel classifier has one weight per "
                "pixel per class. Resize it (e.g. to 28x28) first"
            )
        yield im


def _unreadable(path: Path, e: Exception) -> DataError:
    return DataError(
        f"{path}: cannot read this image ({e}); it may be corrupt, truncated or not an "
        "image; replace it with a valid PNG/JPEG or remove it"
    )


def _loops(path: Path) -> bool:
    try:
        os.stat(path)
    except OSError as e:
        return e.errno == errno.ELOOP
    return False


class _Stack:
    """Reads image files into one preallocated uint8 array; remembers the first size seen."""

    def __init__(self) -> None:
        self.size: tuple[int, int] | None = None
        self.first: Path | None = None  # the file that set self.size

    def read(self, paths: Sequence[Path]) -> np.ndarray:
        out: np.ndarray | None = None
        for i, path in enumerate(paths):
            grey = _read_grey(path)
            if self.size is None:
                self.size, self.first = (grey.shape[0], grey.shape[1]), path
            if grey.shape != self.size:
                raise DataError(
                    f"{path}: image is {_hw(grey.shape)} but {self.first} is {_hw(self.size)}; "
                    "all images must have the same size, so resize them to one size first"
                )
            if out is None:
                out = np.empty((len(paths), *self.size), dtype=np.uint8)  # (n, h, w)
            out[i] = grey
        assert out is not None, "callers pass at least one path"
        return out


def _image_files(folder: Path) -> list[Path]:
    """Image files directly in `folder`, hidden ones skipped, in natural name order."""
    names = []
    for e in _entries(folder):
        if e.name.startswith(".") or os.path.splitext(e.name)[1].lower() not in IMAGE_EXTENSIONS:
            continue
        try:
            if e.is_file():
                names.append(e.name)
        except OSError as err:  # a symbolic link that loops (ELOOP), ...
            raise _not_listable(folder / e.name, err) from None
    return [folder / n for n in sorted(names, key=_natural_key)]


def _subfolders(folder: Path) -> list[Path]:
    """Folders directly in `folder` (links to folders too), hidden ones skipped, in natural
    order. A link that loops is not a folder (it is skipped, as any other non-folder is)."""
    names = [e.name for e in _entries(folder) if not e.name.startswith(".") and _is_dir(e)]
    return [folder / n for n in sorted(names, key=_natural_key)]


def _entries(folder: Path) -> list[os.DirEntry]:
    """os.scandir(folder) as a list; an OSError (unreadable, gone, a loop) is a DataError."""
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except OSError as err:
        raise _not_listable(folder, err) from None


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a link that loops, or that cannot be followed
        return False


def _not_listable(path: Path, err: OSError) -> DataError:
    if err.errno == errno.ELOOP:
        return DataError(
            f"{path}: is a symbolic link that loops ({err.strerror}); remove it or point it "
            "at an image file or folder"
        )
    return DataError(
        f"{path}: cannot be read ({err.strerror}); check that it exists and its "
        "permissions, or remove it"
    )


def _label_folders(folder: Path) -> tuple[list[Path], list[str]]:
    """<label>/* under `folder` -> (image files, label name per file); nothing decoded."""
    subs = _subfolders(folder)
    if not subs:
        loose = " (it holds images directly: put each class in a subfolder)"
        raise DataError(
            f"{folder}: no label folders found{loose if _image_files(folder) else ''}; "
            f"expected <label>/ subfolders of images, or give {LAYOUTS}"
        )
    files: list[Path] = []
    names: list[str] = []
    for sub in subs:
        found = _image_files(sub)
        if not found:
            exts = " ".join(sorted(IMAGE_EXTENSIONS))
            raise DataError(
                f"{sub}: label folder has no image files ({exts}); add some or remove it"
            )
        files += found
        names += [sub.name] * len(found)
    return files, names


def _read_image_folder(folder: Path, classes: Sequence[str] | None = None) -> dict:
    """List every image file, check that they can fit in memory (from the first image's
    header), then decode them."""
    train_dir = next((folder / d for d in TRAIN_DIRS if (folder / d).is_dir()), folder)
    valid_dir = next((folder / d for d in VALID_DIRS if (folder / d).is_dir()), None)
    if train_dir == folder:
        valid_dir = None
    files, names = _label_folders(train_dir)
    labels = sorted(set(names), key=_natural_key)
    vfiles, vnames = _label_folders(valid_dir) if valid_dir is not None else ([], [])
    unknown = sorted(set(vnames) - set(labels), key=_natural_key)
    if unknown:
        raise DataError(
            f"{valid_dir / unknown[0]}: validation label {unknown[0]!r} has no folder in "
            f"{train_dir}; train labels are {labels}. Add it to train or remove it from valid"
        )
    n_classes = len(set(map(str, classes))) if classes is not None else len(labels)
    check_fits(folder, len(files) + len(vfiles), _image_size(files[0]), n_classes)
    stack = _Stack()
    labels, y = _index(names)
    out = dict(train=(stack.read(files), y), valid=None, labels=labels, source=f"folder {folder}")
    if valid_dir is None:
        return out
    vy = np.array([labels.index(n) for n in vnames], dtype=np.int64)
    return dict(out, valid=(stack.read(vfiles), vy), split=f"folder {valid_dir.name}/")


# --- MNIST IDX ----------------------------------------------------------------------------


def _find_idx(folder: Path, prefix: str, kind: str) -> Path | None:
    """The first existing of <prefix>-<kind>-idxN-ubyte, <prefix>-<kind>.idxN-ubyte (+ .gz)."""
    n = 3 if kind == "images" else 1
    for stem in (f"{prefix}-{kind}-idx{n}-ubyte", f"{prefix}-{kind}.idx{n}-ubyte"):
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


def _read_idx(path: Path, kind: str) -> np.ndarray:
    """Parse one IDX file -> uint8 (n, h, w) images or (n,) labels. Gzipped if it starts so.

    Layout: 4-byte big-endian magic (0x00000803 images, 0x00000801 labels), one 4-byte
    big-endian size per dimension, then the ubyte data; the file length must match exactly.
    """
    try:
        raw = path.read_bytes()
        raw = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot read this file ({e}); it may be truncated") from e
    magic = int.from_bytes(raw[:4], "big")
    if len(raw) < 4 or magic != IDX_MAGIC[kind]:
        raise DataError(
            f"{path}: not an MNIST IDX {kind} file (magic number 0x{magic:08x}, expected "
            f"0x{IDX_MAGIC[kind]:08x}); re-download it"
        )
    header = 4 + 4 * (magic & 0xFF)  # magic, then one size per dimension
    dims = struct.unpack(f">{magic & 0xFF}I", raw[4:header]) if len(raw) >= header else ()
    expected = header + int(np.prod(dims, dtype=np.int64)) if dims else header
    if not dims or len(raw) != expected:
        raise DataError(
            f"{path}: {len(raw)} bytes but its header (dimensions {dims}) says {expected}; "
            "the file is truncated or damaged, re-download it"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _read_idx_folder(folder: Path) -> dict:
    """train-* files are the training set; t10k-* files, if any, the validation set."""
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for prefix in ("train", "t10k"):
        images, labels = _find_idx(folder, prefix, "images"), _find_idx(folder, prefix, "labels")
        if images is None or labels is None:
            if images or labels:
                need = "labels-idx1" if labels is None else "images-idx3"
                raise DataError(
                    f"{images or labels}: found, but no {prefix}-{need}-ubyte (or .gz) beside it"
                )
            continue
        x, y = _read_idx(images, "images"), _read_idx(labels, "labels")  # (n, h, w), (n,)
        if len(x) != len(y):
            raise DataError(f"{images}: {len(x)} images but {labels} has {len(y)} labels")
        parts[prefix] = (x, y)
    values = np.unique(np.concatenate([y for _, y in parts.values()]))  # digits present
    lookup = np.zeros(256, dtype=np.int64)
    lookup[values] = np.arange(len(values))
    x, y = parts["train"]
    out = dict(train=(x, lookup[y]), valid=None, labels=[str(v) for v in values])
    if "t10k" in parts:
        vx, vy = parts["t10k"]
        out.update(valid=(vx, lookup[vy]), split="files t10k-*")
    return dict(out, source=f"MNIST IDX files in {folder}")


# --- .npz -----------------------------------------------------------------------------


def _read_npz(path: Path) -> dict:
    """x: (n, h, w) or (n, h*w) with h == w; uint8, other ints in 0-255, or floats (max <= 1
    is taken as [0, 1] and scaled by 255, else as [0, 255]; then rounded). y: (n,) ints,
    whole floats or strings. Object arrays are refused: nothing is ever unpickled."""
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as e:  # ValueError (pickle/unknown format), BadZipFile, EOFError, OSError
        raise DataError(f"{path}: not a readable .npz archive ({e}); save with np.savez") from e
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: a single .npy array; save x and y with np.savez(path, x=, y=)")
    with npz:
        missing = [k for k in ("x", "y") if k not in npz.files]
        if missing:
            raise DataError(
                f"{path}: no array named {' or '.join(missing)} (it has {npz.files}); "
                "save with np.savez(path, x=images, y=labels)"
            )
        try:
            x, y = npz["x"], npz["y"]
        except Exception as e:  # an object array (ValueError), or a damaged member
            why = str(e)
            if "allow_pickle" in why:
                why = "it holds an object array (pickled Python objects), which descent never loads"
            raise DataError(
                f"{path}: cannot read x or y ({why}); save x as uint8 and y as ints or strings "
                "(np.array(labels, dtype=str))"
            ) from None
    x = _npz_pixels(path, x)  # (n, h, w) uint8
    labels, idx = _npz_labels(path, y, len(x))
    return dict(train=(x, idx), valid=None, labels=labels, source=str(path))


def _npz_pixels(path: Path, x: np.ndarray) -> np.ndarray:
    if x.ndim == 2:
        side = int(round(x.shape[1] ** 0.5))
        if side * side != x.shape[1]:
            raise DataError(
                f"{path}: x has shape {x.shape}; flat rows must be square images "
                "(e.g. 784 = 28x28), or save x as (n, h, w)"
            )
        x = x.reshape(len(x), side, side)  # (n, h*w) -> (n, h, w)
    if x.ndim != 3 or 0 in x.shape:
        raise DataError(f"{path}: x has shape {x.shape}; expected (n, h, w) or (n, h*w) images")
    if x.dtype == np.uint8:
        return x
    if x.dtype.kind in "iu" and (x.min() < 0 or x.max() > 255):
        raise DataError(f"{path}: x has {x.dtype} values outside 0-255; expected 0-255 pixels")
    if x.dtype.kind == "f":
        if not np.isfinite(x).all() or x.min() < 0 or x.max() > 255:
            raise DataError(f"{path}: x has values outside [0, 1] and [0, 255] (or NaN)")
        x = np.rint(x * 255.0 if x.max() <= 1 else x)
    elif x.dtype.kind not in "iu":
        raise DataError(f"{path}: x has dtype {x.dtype}; expected uint8 pixels (or ints, floats)")
    return x.astype(np.uint8)


def _npz_labels(path: Path, y: np.ndarray, n: int) -> tuple[list[str], np.ndarray]:
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"{path}: y has shape {y.shape} but x has {n} images; expected ({n},)")
    if y.dtype.kind == "f" and np.isfinite(y).all() and (y == np.rint(y)).all():
        y = y.astype(np.int64)  # whole-number floats, e.g. from a CSV
    if y.dtype.kind in "iub":
        names = [str(int(v)) for v in y]
    elif y.dtype.kind in "US":
        names = [v.decode() if isinstance(v, bytes) else str(v) for v in y]
    else:
        raise DataError(f"{path}: y has dtype {y.dtype}; expected integer or string labels")
    return _index(names)


# --- assembly: sort labels, split, select classes -> tensors ---------------------------


def _assemble(
    *,
    train: tuple[np.ndarray, np.ndarray],
    valid: tuple[np.ndarray, np.ndarray] | None,
    source: str,
    labels: list[str],
    split: str = "",
    classes: Sequence[str] | None,
    valid_pct: float,
    seed: int,
) -> ImageData:
    x, train_y = train  # (n, h, w) uint8, (n,) int64
    order = sorted(range(len(labels)), key=lambda i: _natural_key(labels[i]))
    renumber = np.empty(len(labels), dtype=np.int64)
    renumber[order] = np.arange(len(labels))
    labels = [labels[i] for i in order]
    train_y = renumber[train_y]
    if valid is not None:
        vx, vy = valid[0], renumber[valid[1]]
    elif valid_pct == 0:
        vx, vy, split = x[:0], train_y[:0], "none (valid_pct 0)"
    else:  # seeded permutation of all images, before class selection
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed)).numpy()
        n_valid = int(round(len(x) * valid_pct))
        v_idx, t_idx = np.sort(perm[:n_valid]), np.sort(perm[n_valid:])
        vx, vy, x, train_y = x[v_idx], train_y[v_idx], x[t_idx], train_y[t_idx]
        split = f"random {valid_pct * 100:g}% (seed {seed})"
    if classes is not None:
        chosen = sorted(dict.fromkeys(str(c) for c in classes), key=_natural_key)
        unknown = [c for c in chosen if c not in labels]
        if unknown:
            raise DataError(f"{source}: no label {unknown[0]!r}; the labels are {labels}")
        keep = np.array([labels.index(c) for c in chosen], dtype=np.int64)
        new = np.full(len(labels), -1, dtype=np.int64)
        new[keep] = np.arange(len(keep))
        t_mask, v_mask = np.isin(train_y, keep), np.isin(vy, keep)
        x, train_y, vx, vy = x[t_mask], new[train_y[t_mask]], vx[v_mask], new[vy[v_mask]]
        labels = chosen
    if len(labels) < 2:
        raise DataError(f"{source}: only the label(s) {labels}; a classifier needs at least 2")
    if len(x) == 0:
        raise DataError(f"{source}: no training images left; lower valid_pct ({valid_pct})")
    return ImageData(
        train_x=_tensor(x),
        train_y=_tensor(train_y),
        valid_x=_tensor(vx),
        valid_y=_tensor(vy),
        labels=labels,
        source=source,
        size=(int(x.shape[1]), int(x.shape[2])),
        split=split,
    )


def _tensor(a: np.ndarray) -> torch.Tensor:
    """numpy -> torch, copying read-only buffers (e.g. np.frombuffer) so torch may write."""
    return torch.from_numpy(a if a.flags.writeable and a.flags.c_contiguous else a.copy())


def _index(names: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Label names per item -> (distinct names, int64 index per item)."""
    labels, idx = np.unique(np.asarray(names, dtype=str), return_inverse=True)
    return [str(s) for s in labels], idx.astype(np.int64).reshape(-1)


def _natural_key(name: str) -> tuple:
    """Sort key: digit runs compare as numbers, so "2" < "10" and "img9" < "img10"."""
    parts = re.split(r"(\d+)", name)
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), name


def _hw(size: tuple[int, ...]) -> str:
    return f"{size[0]}x{size[1]} (h x w)"
