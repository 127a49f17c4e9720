"""`--tensorboard DIR`: the run as TensorBoard event files, the ecosystem's convention,
written through `torch.utils.tensorboard` (the `tensorboard` package: `pip install
'descent[tensorboard]'`), then `tensorboard --logdir DIR`.

Per epoch (step = the epoch number, so a resumed run goes on where it was):

    train_loss, valid_loss, valid_<metric>    scalars, as in metrics.csv
    lr                                        the rate at the end of the epoch
    param/<name>                              a fit's parameter values
    weights/<label>                           a classifier's per-class weight images
                                              (red for, blue against, as on the page)
    hist/<parameter>                          a histogram of each parameter tensor

The writer queues events and writes them from its own thread; nothing here reads the
device more than once per epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from descent.core.events import Callback
from descent.errors import ConfigError
from descent.io.files import check_writable

MAX_IMAGES = 16  # weight images per epoch (an MLP's hidden units are many)
MISSING = (
    "--tensorboard needs the tensorboard package: pip install 'descent[tensorboard]' "
    "(or pip install tensorboard)"
)


def writer_class(log_dir: str | Path):
    """torch's SummaryWriter, once `log_dir` is known to be usable (ConfigError naming it
    or saying what to install): nothing is made yet."""
    if not str(log_dir).strip():  # Path("") is the working directory
        raise ConfigError("--tensorboard '': give a folder for the event files, e.g. runs/tb")
    check_writable(log_dir, "--tensorboard", folder=True)
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(MISSING) from None
    return SummaryWriter


def summary_writer(log_dir: str | Path):
    """torch's SummaryWriter on `log_dir` (made now), or a ConfigError naming it."""
    SummaryWriter = writer_class(log_dir)  # noqa: N806 - a class
    try:
        return SummaryWriter(log_dir=str(log_dir))
    except OSError as e:
        raise ConfigError(
            f"--tensorboard {log_dir}: cannot write event files there ({e.strerror or e}); "
            "choose another folder"
        ) from None


def bwr(weights: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """(k, h*w) weights -> (k, h, w, 3) RGB in [0, 1]: each image scaled by its largest
    magnitude, positive red, negative blue, zero white (the page's colours)."""
    w = torch.nan_to_num(weights.detach().float().cpu())  # (k, n)
    scale = w.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)
    v = (w / scale).reshape(len(w), *shape)  # (k, h, w) in [-1, 1]
    pos, neg = v.clamp(min=0), (-v).clamp(min=0)
    return torch.stack([1 - neg, 1 - pos - neg, 1 - pos], dim=-1)  # (k, h, w, 3)


class TensorBoard(Callback):
    """Write scalars, the lr, weight images and histograms to TensorBoard event files
    every epoch (see the module text)."""

    order = 56  # after the stop rules and displays, with the live page's feed

    def __init__(
        self,
        log_dir: str | Path,
        *,
        labels: Sequence[str] | None = None,
        image_shape: tuple[int, int] | None = None,
        histograms: bool = True,
    ) -> None:
        writer_class(log_dir)  # a bad folder or a missing package: refused here, before work
        self.log_dir = Path(log_dir)
        self.labels = list(labels) if labels is not None else None
        self.image_shape, self.histograms = image_shape, histograms
        self._writer = None  # made when training starts: a refused command leaves no files

    @property
    def writer(self):
        if self._writer is None:
            self._writer = summary_writer(self.log_dir)
        return self._writer

    def before_fit(self) -> None:
        self.writer  # noqa: B018 - the event file exists from the start of training

    def after_epoch(self) -> None:
        learn, writer = self.learner, self.writer
        step = int(learn.record["epoch"])
        for key, value in learn.record.items():
            if key not in ("epoch", "time"):
                writer.add_scalar(key, value, step)
        writer.add_scalar("lr", float(learn.opt.param_groups[0]["lr"]), step)
        model = learn.model
        with torch.no_grad():
            values = getattr(model, "values", None)
            if callable(values):
                for name, value in values().items():
                    writer.add_scalar(f"param/{name}", value, step)
            if callable(getattr(model, "class_weights", None)):
                self._images(model.class_weights()[:MAX_IMAGES], step)
            if self.histograms:
                for name, p in model.named_parameters():
                    writer.add_histogram(f"hist/{name}", p.detach().float().cpu(), step)

    def _images(self, weights: torch.Tensor, step: int) -> None:
        n = weights.shape[1]
        side = int(n**0.5)
        shape = self.image_shape or ((side, side) if side * side == n else (1, n))
        images = bwr(weights, shape)  # (k, h, w, 3)
        names = self.labels if self.labels and len(self.labels) >= len(images) else None
        for i, image in enumerate(images):
            label = names[i] if names else str(i)
            self.writer.add_image(f"weights/{label}", image, step, dataformats="HWC")

    def after_fit(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
