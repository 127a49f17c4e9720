"""Image sets other than MNIST, written as folders of PNGs (`<label>/*.png`), the layout
a new user brings: each is made from what an installed package ships, so nothing is
downloaded, and the same seed writes the same files.

- `sklearn_digits`: scikit-learn's bundled 8x8 digits (1,797 images, 0-16 grey levels
  scaled to 0-255).
- `shifted_digits`: the same digits enlarged to 16x16 (bilinear) at a random place in a
  20x20 canvas (up to 2 pixels off centre) and sheared by a random slant: position and
  slant vary, as in MNIST.
- `typed_digits`: 0-9 typed in the fonts matplotlib ships (DejaVu, STIX, Computer
  Modern; upright, bold, italic), at random sizes and rotations, up to a pixel off
  centre, 20x20.
- `typed_slant`: letters and digits labelled "upright" or "italic" by the font they are
  typed in, 20x20: here the slant is the label, so deskewing must not be chosen.

    python bench/image_sets.py /tmp/sets      # writes the three folders there
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SETS = ("sklearn_digits", "shifted_digits", "typed_digits", "typed_slant")


def write_set(name: str, root: str | Path, seed: int = 0) -> Path:
    """Write image set `name` under root/name (once: an existing folder is reused)."""
    folder = Path(root) / name
    if (folder / ".complete").exists():
        return folder
    images, labels = MAKERS[name](seed)
    for i, (img, y) in enumerate(zip(images, labels, strict=True)):
        sub = folder / str(y)
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(sub / f"{i:05d}.png")
    (folder / ".complete").touch()
    return folder


def sklearn_digits(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return np.rint(d.images * 255 / 16).astype(np.uint8), d.target  # (1797, 8, 8)


def shifted_digits(seed: int = 0, canvas: int = 20, side: int = 16) -> tuple:
    x, y = sklearn_digits()
    rng = np.random.default_rng(seed)
    out = np.zeros((len(x), canvas, canvas), dtype=np.uint8)
    for i, img in enumerate(x):
        shear = rng.uniform(-0.3, 0.3)  # slant: x' = x + shear * (y - centre)
        big = Image.fromarray(img).resize((side, side), Image.Resampling.BILINEAR)
        big = big.transform(
            (side, side), Image.Transform.AFFINE, (1, shear, -shear * side / 2, 0, 1, 0),
            resample=Image.Resampling.BILINEAR,
        )  # fmt: skip
        r, c = rng.integers(0, canvas - side + 1, size=2)
        out[i, r : r + side, c : c + side] = np.asarray(big)
    return out, y


def _fonts(slanted: bool | None = None) -> list[Path]:
    """matplotlib's text fonts; slanted True: only italic/oblique ones, False: only upright."""
    import matplotlib

    fonts = sorted(
        p
        for p in (Path(matplotlib.get_data_path()) / "fonts" / "ttf").glob("*.ttf")
        if p.name.startswith(("DejaVuSans", "DejaVuSerif", "STIXGeneral", "cm"))
        and "Display" not in p.name
        and p.name not in ("cmex10.ttf", "cmsy10.ttf", "cmmi10.ttf")
    )
    if slanted is None:
        return fonts
    return [p for p in fonts if any(s in p.stem for s in ("Oblique", "Ita", "cmti")) == slanted]


def _typed(text: str, font: Path, rng: np.random.Generator, side: int, tilt: float) -> np.ndarray:
    """`text` drawn large in `font`, turned by up to `tilt` degrees, reduced to side x side
    with antialiasing and moved by up to a pixel each way."""
    big = 4 * side
    face = ImageFont.truetype(str(font), int(big * rng.uniform(0.55, 0.85)))
    img = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(img)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=face)
    draw.text(((big - right - left) / 2, (big - bottom - top) / 2), text, fill=255, font=face)
    img = img.rotate(rng.uniform(-tilt, tilt), resample=Image.Resampling.BILINEAR)
    img = img.resize((side, side), Image.Resampling.LANCZOS)
    return np.roll(np.asarray(img), rng.integers(-1, 2, size=2), axis=(0, 1))


def typed_digits(seed: int = 0, n: int = 3000, side: int = 20) -> tuple:
    fonts = _fonts()
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, size=n)
    x = np.stack([_typed(str(d), fonts[rng.integers(len(fonts))], rng, side, 15) for d in y])
    return x, y


def typed_slant(seed: int = 0, n: int = 2000, side: int = 20) -> tuple:
    upright, italic = _fonts(slanted=False), _fonts(slanted=True)
    rng = np.random.default_rng(seed)
    chars = "ABDEHKLMNPRTUVXYZ0123456789"
    y = rng.integers(0, 2, size=n)  # 0 upright, 1 italic
    x = np.stack(
        [
            _typed(chars[rng.integers(len(chars))], fonts[rng.integers(len(fonts))], rng, side, 5)
            for fonts in ([upright, italic][k] for k in y)
        ]
    )
    return x, np.array(["upright", "italic"])[y]


MAKERS = {
    "sklearn_digits": sklearn_digits,
    "shifted_digits": shifted_digits,
    "typed_digits": typed_digits,
    "typed_slant": typed_slant,
}


if __name__ == "__main__":
    for name in SETS:
        print(write_set(name, sys.argv[1] if len(sys.argv) > 1 else "/tmp/descent-image-sets"))
