"""Pictures for the terminal: a weight image as coloured half-block characters."""

from __future__ import annotations

import torch
from rich.color import Color
from rich.style import Style
from rich.text import Text


def heatmap_text(image: torch.Tensor) -> Text:
    """A (h, w) weight image as terminal text, two pixel rows per line ("▀" with
    the top pixel as foreground and the bottom one as background): red where a
    pixel counts for the class, blue against, white where it does not matter."""
    img = image.detach().cpu().double()
    lim = float(img.abs().max()) or 1.0
    if img.shape[0] % 2:
        img = torch.cat([img, torch.zeros(1, img.shape[1], dtype=img.dtype)])
    text = Text()
    for r in range(0, img.shape[0], 2):
        for top, bottom in zip(img[r].tolist(), img[r + 1].tolist(), strict=True):
            text.append("▀", style=Style(color=_bwr(top / lim), bgcolor=_bwr(bottom / lim)))
        text.append("\n")
    return text


def _bwr(v: float) -> Color:
    """-1 -> blue, 0 -> white, +1 -> red (matplotlib's "bwr")."""
    v = max(-1.0, min(1.0, v))
    fade = int(255 * (1 - abs(v)))
    return Color.from_rgb(255, fade, fade) if v > 0 else Color.from_rgb(fade, fade, 255)
