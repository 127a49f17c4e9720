"""Train K copies of a model at K learning rates at once: one vectorised computation.

    result = lr_sweep(model, train, valid, loss="bce", lrs=parse_lrs("1e-3:10:16"), epochs=3)
    result.best_lr, result.best_loss, result.diverged
    model.load_state_dict(result.params(result.best_index))

Every copy starts from the model's current parameters (the model itself is not
changed) and sees the same batches, in the same seeded order (`train.epoch(e)`), as a
Learner would. Each parameter is held stacked (K, ...), row i for copy i. Per batch the
model runs once for all copies, `torch.func.vmap(functional_call)` in general, or the
model's `forward_stacked` (PixelClassifier, MLP: one (K*k, 784) @ (784, n) product) with
a built-in loss; the K losses are summed and one backward pass gives every copy its own
gradient (no copy's loss depends on another's parameters).

The step is torch.optim's: one optimizer at lr 1 over zero "direction" tensors D
(stacked like the parameters) is given the copies' gradients, so after `opt.step()`
D_i = -u_i, the update torch.optim would make for copy i at lr 1 (SGD: the gradient or
momentum buffer; Adam: m_hat / (sqrt(v_hat) + eps)), and copy i moves by
P_i += lr_i * D_i. Weight decay is applied as torch.optim applies it (SGD, Adam:
g += wd * P; AdamW: P *= 1 - lr * wd first). Per-rate histories and parameters match
K separate Learner runs to float rounding (tests/test_sweep.py).

Diverged: copy i is diverged at epoch e when, in epoch e, a batch loss or its updated
parameters are not finite, or the epoch's train_loss is more than 1e4 times its best
earlier epoch's (DivergenceGuard's factor, measured from the copy's best epoch rather
than its first: sixteen rates include some that start badly). From then on it is
frozen: it keeps its last finite parameters (those before the offending step), its
history ends at epoch e, and the others carry on unaffected. Nothing is raised.
Best: among the copies that did not diverge, the one with the lowest best_loss, the
lowest valid_loss of any of its epochs (train_loss when there is no validation set).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch.func import functional_call, vmap

from descent.core.events import CancelFit
from descent.core.losses import STACKED_GRADS, STACKED_LOSSES, get_loss, stacked_accepts
from descent.core.metrics import Metric, get_metric
from descent.core.optim import make_optimizer
from descent.data.batches import Batches
from descent.errors import ConfigError
from descent.options import AT_MOST, SWEEP_OPTIMIZERS, check_bounds

DIVERGENCE_FACTOR = 1e4  # DivergenceGuard's factor; here x the copy's best earlier epoch
ADAMW_WEIGHT_DECAY = 0.01  # torch.optim.AdamW's default


def parse_lrs(text: str) -> list[float]:
    """'1e-3:10:16' -> 16 rates log-spaced from 1e-3 to 10 (both included);
    '0.01,0.1,1' -> those rates."""
    example = "use LO:HI:K (e.g. --lrs 1e-3:10:16) or a list (e.g. --lrs 0.01,0.1,1)"
    most = int(AT_MOST["rates"])
    try:
        if ":" in text:
            lo_s, hi_s, k_s = text.split(":")
            lo, hi, k = float(lo_s), float(hi_s), int(k_s)
            if not (0 < lo < hi < math.inf) or k < 2:
                raise ValueError
            _check_count(text, k, most)
            return [lo * (hi / lo) ** (i / (k - 1)) for i in range(k)]
        lrs = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--lrs {text!r}: {example}") from None
    if not lrs or not all(0 < v < math.inf for v in lrs):
        raise ConfigError(f"--lrs {text!r}: rates must be positive numbers; {example}")
    _check_count(text, len(lrs), most)
    return lrs


def _check_count(text: str, k: int, most: int) -> None:
    """K copies of the model train at once: refuse more than `most` before any is made."""
    if k > most:
        what = f"--lrs {text!r}" if text else "lrs"
        raise ConfigError(
            f"{what} asks for {k:,} rates; lr-sweep trains at most {most:,} copies "
            f"at once (each holds the model and its optimizer state): use fewer, e.g. "
            "--lrs 1e-4:1:32"
        )


@dataclass
class SweepResult:
    """What lr_sweep returns; per-rate lists are in the order of `lrs`."""

    lrs: list[float]
    histories: list[list[dict]]  # per rate: per-epoch records, as Learner.history
    diverged: list[int | None]  # per rate: the epoch (1-based) it diverged in, or None
    monitor: str  # what best_loss is of: valid_loss or train_loss
    seconds: float = 0.0
    stopped: str = "max_epochs"  # or "interrupted": on_batch / on_epoch raised CancelFit
    message: str = ""
    stacked: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)  # (K, ...)
    buffers: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def final_loss(self) -> list[float]:
        return [h[-1][self.monitor] if h else math.nan for h in self.histories]

    @property
    def best_loss(self) -> list[float]:
        out = []
        for h in self.histories:
            vals = [r[self.monitor] for r in h if math.isfinite(r[self.monitor])]
            out.append(min(vals) if vals else math.nan)
        return out

    @property
    def best_index(self) -> int | None:
        best = self.best_loss
        ok = [i for i, d in enumerate(self.diverged) if d is None and math.isfinite(best[i])]
        return min(ok, key=lambda i: best[i]) if ok else None

    @property
    def best_lr(self) -> float | None:
        i = self.best_index
        return None if i is None else self.lrs[i]

    def params(self, i: int) -> dict[str, torch.Tensor]:
        """Copy i's parameters (final, or current during on_epoch) with the model's
        buffers: a state_dict for `model.load_state_dict`."""
        return {**self.buffers, **{n: v[i].detach().clone() for n, v in self.stacked.items()}}

    def table(self) -> str:
        """One row per rate: final and best loss, the last epoch's metrics, a note."""
        last_rows = [h[-1] if h else {} for h in self.histories]
        metric = [k for k in (last_rows[0] if last_rows else {})
                  if k.startswith("valid_") and k != "valid_loss"]  # fmt: skip
        head = ["lr", f"final {self.monitor}", f"best {self.monitor}", *metric, ""]
        rows, best = [], self.best_index
        for i, lr in enumerate(self.lrs):
            note = (
                f"diverged at epoch {self.diverged[i]}"
                if self.diverged[i] is not None
                else ("<- best" if i == best else "")
            )
            rows.append(
                [f"{lr:.3g}", _fmt(self.final_loss[i]), _fmt(self.best_loss[i]),
                 *[_fmt(last_rows[i].get(m, math.nan)) for m in metric], note]
            )  # fmt: skip
        widths = [max(len(str(r[c])) for r in [head, *rows]) for c in range(len(head))]
        lines = ["  ".join(str(v).rjust(w) for v, w in zip(r, widths, strict=True)) for r in
                 [head, *rows]]  # fmt: skip
        return "\n".join(line.rstrip() for line in lines)

    def to_json(self) -> dict:
        return {
            "lrs": self.lrs,
            "monitor": self.monitor,
            "final_loss": self.final_loss,
            "best_loss": self.best_loss,
            "diverged": self.diverged,
            "best_index": self.best_index,
            "best_lr": self.best_lr,
            "seconds": self.seconds,
            "stopped": self.stopped,
            "message": self.message,
            "histories": self.histories,
        }


def _fmt(v: float) -> str:
    return f"{v:.4g}" if math.isfinite(v) else str(v)


def lr_sweep(
    model: torch.nn.Module,
    train: Batches,
    valid: Batches | None,
    *,
    loss: str | Callable = "mse",
    lrs: Sequence[float],
    epochs: int,
    optimizer: str = "sgd",
    opt_kwargs: dict | None = None,
    metrics: Sequence[str | Metric] = (),
    on_epoch: Callable[[int, SweepResult], None] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> SweepResult:
    """Train len(lrs) copies of `model` at once, copy i at rate lrs[i], for `epochs`
    epochs; see the module text for the rules (diverged, best).

    optimizer: "sgd", "adam" or "adamw" with their torch.optim options (opt_kwargs).
    metrics: names or Metric objects, computed per copy on `valid`.
    on_epoch(epoch, result): called after every epoch (1-based) with the result so far.
    on_batch(epoch, batch): called after every training batch (both 1-based).
    Either may raise CancelFit (the page's Stop): the sweep ends there, keeping the
    epochs completed (the partial epoch is left out), and the result says why in
    `stopped` and `message`.
    """
    if not isinstance(optimizer, str) or optimizer.lower() not in SWEEP_OPTIMIZERS:
        raise ConfigError(
            f"lr-sweep trains with --optimizer {', '.join(SWEEP_OPTIMIZERS)}, not "
            f"{optimizer!r} (L-BFGS and Levenberg-Marquardt choose their own step lengths)"
        )
    optimizer = optimizer.lower()
    lrs = [float(v) for v in lrs]
    if not lrs or not all(0 < v < math.inf for v in lrs):
        raise ConfigError(f"--lrs must be one or more positive numbers, got {lrs}")
    _check_count("", len(lrs), int(AT_MOST["rates"]))
    check_bounds("epochs", epochs)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    if not names:
        raise ConfigError("lr-sweep: the model has no trainable parameters")
    loss_func = get_loss(loss) if isinstance(loss, str) else loss
    k = len(lrs)
    t0 = time.perf_counter()
    kwargs = dict(opt_kwargs or {})
    # Weight decay is applied here, at each copy's rate where it matters: AdamW scales the
    # parameters (decoupled), SGD and Adam add wd * P to the gradient (see _step)
    wd = float(kwargs.pop("weight_decay", ADAMW_WEIGHT_DECAY if optimizer == "adamw" else 0))
    decoupled = optimizer == "adamw"
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    # stacked[name]: (K, ...) leaf, row i = copy i's parameter (requires_grad=False ones stay
    # as they are, in `fixed`)
    params = dict(model.named_parameters())
    stacked = {
        n: params[n].detach().unsqueeze(0).repeat(k, *[1] * params[n].dim()).requires_grad_(True)
        for n in names
    }
    fixed = {n: p.detach() for n, p in params.items() if n not in stacked}
    directions = {n: torch.zeros_like(v) for n, v in stacked.items()}  # D, see _step
    opt = make_optimizer(optimizer, list(directions.values()), 1.0, **kwargs)
    # each parameter's rates as a (K, 1, ...) column in its dtype and device
    rates = {
        n: torch.tensor(lrs, dtype=v.dtype, device=v.device).view(-1, *[1] * (v.dim() - 1))
        for n, v in stacked.items()
    }
    device = next(iter(stacked.values())).device
    alive = torch.ones(k, dtype=torch.bool, device=device)  # (K,) on device: no sync per batch
    run = _runner(model, loss_func, {**fixed, **buffers})
    train_batch = _gradients(model, loss_func, run, {**fixed, **buffers})
    metric_sets = [
        [copy.deepcopy(get_metric(m) if isinstance(m, str) else m) for m in metrics]
        for _ in range(k)
    ]
    result = SweepResult(
        lrs=lrs,
        histories=[[] for _ in range(k)],
        diverged=[None] * k,
        monitor="valid_loss" if valid is not None else "train_loss",
        stacked=stacked,
        buffers={**fixed, **buffers},
    )
    best_train = [math.inf] * k
    was_training = model.training
    try:
        for epoch in range(epochs):
            e0 = time.perf_counter()
            model.train()
            batch_losses = []
            for batch_no, (xb, yb) in enumerate(train.epoch(epoch), 1):
                batch = train_batch(stacked, xb, yb)  # (K,); copy i's gradient in row i
                alive &= torch.isfinite(batch)
                _step(opt, stacked, directions, rates, alive, wd, decoupled)
                batch_losses.append(batch)
                if on_batch is not None:
                    on_batch(epoch + 1, batch_no)
            train_loss = train.mean_of(batch_losses).tolist()  # (K,) -> floats, one sync
            records = [{"epoch": epoch + 1, "train_loss": v} for v in train_loss]
            if valid is not None:
                _validate(model, run, stacked, valid, epoch, metric_sets, records)
            seconds = time.perf_counter() - e0
            still = alive.tolist()
            for i, rec in enumerate(records):
                if result.diverged[i] is not None:
                    continue
                rec["time"] = seconds  # the epoch of all K copies together
                result.histories[i].append(rec)
                tl = rec["train_loss"]
                if not still[i] or not math.isfinite(tl) or tl > DIVERGENCE_FACTOR * best_train[i]:
                    result.diverged[i] = epoch + 1
                    alive[i] = False
                best_train[i] = min(best_train[i], tl)
            result.seconds = time.perf_counter() - t0
            if on_epoch is not None:
                on_epoch(epoch + 1, result)
    except CancelFit as stop:
        result.stopped, result.message = str(stop.reason), stop.message
    finally:
        model.train(was_training)
    for v in stacked.values():
        v.requires_grad_(False)
    result.seconds = time.perf_counter() - t0
    return result


def _runner(model: torch.nn.Module, loss_func: Callable, extra: dict[str, torch.Tensor]):
    """(stacked params, xb, yb) -> (preds (K, n, ...), losses (K,)) for all copies."""

    def forward(params, xb, yb):
        preds = functional_call(model, {**params, **extra}, (xb,))
        return preds, loss_func(preds, yb)

    generic = vmap(forward, in_dims=(0, None, None))  # any vmappable model and loss
    per_copy = STACKED_LOSSES.get(loss_func)
    fast = per_copy is not None and hasattr(model, "forward_stacked") and not extra

    def run(params, xb, yb):
        # PixelClassifier and MLP run K copies as one big matrix product themselves, and
        # the built-in losses take (K, n, ...) at once: 25-40% faster than vmap (bench)
        if fast:
            preds = model.forward_stacked(params, xb)
            if stacked_accepts(loss_func, preds, yb):
                return preds, per_copy(preds, yb)
        return generic(params, xb, yb)

    return run


def _gradients(model: torch.nn.Module, loss_func: Callable, run, extra: dict):
    """(stacked params, xb, yb) -> the (K,) losses, with each copy's gradient in row i of
    each parameter's .grad: by hand where the model has `backward_stacked` of its own
    (PixelClassifier) and the loss a closed form (bce, mnist, cross-entropy; one (K*k, n)
    @ (n, 784) product instead of autograd's graph), else one backward of the summed
    losses (no copy's loss depends on another's parameters)."""

    def autograd(params, xb, yb):
        _, losses = run(params, xb, yb)
        losses.sum().backward()
        return losses.detach()

    by_hand = STACKED_GRADS.get(loss_func)
    if by_hand is None or extra or "backward_stacked" not in type(model).__dict__:
        return autograd

    @torch.no_grad()
    def fused(params, xb, yb):
        x = model.pixels(xb)  # (n, 784) floats, converted once for both products
        preds = model.forward_stacked(params, x)
        if yb.is_floating_point() or not stacked_accepts(loss_func, preds, yb):
            with torch.enable_grad():  # float targets, or the loss's own shape error
                return autograd(params, xb, yb)
        losses, g = by_hand(preds, yb)
        for name, grad in model.backward_stacked(x, g).items():
            params[name].grad = grad
        return losses

    return fused


@torch.no_grad()
def _step(opt, stacked, directions, rates, alive, wd: float, decoupled: bool) -> None:
    """One update of every live copy: torch.optim's direction D_i at lr 1, then
    P_i += lr_i * D_i. A copy whose new parameters would not be finite (checked on its
    per-tensor sums, one pass) is not moved and is marked dead in `alive`; dead copies
    never move again."""
    moved = [n for n, p in stacked.items() if p.grad is not None]  # as torch.optim skips
    for n in moved:
        p, d = stacked[n], directions[n]
        d.zero_()
        d.grad = p.grad.add(p, alpha=wd) if wd and not decoupled else p.grad
    opt.step()
    ok = alive.clone()
    for n in moved:  # D becomes the new parameters (D is zeroed again next step)
        p, d, rate = stacked[n], directions[n], rates[n]
        d.mul_(rate).add_(p.mul(1 - rate * wd) if wd and decoupled else p)  # AdamW: P *= 1-lr*wd
        ok &= torch.isfinite(d.reshape(len(d), -1).sum(1))
    alive.copy_(ok)
    for n in moved:
        p = stacked[n]
        p.copy_(torch.where(ok.view(rates[n].shape), directions[n], p))
        p.grad = None
        directions[n].grad = None


def _validate(model, run, stacked, valid: Batches, epoch: int, metric_sets, records) -> None:
    """Add valid_loss and valid_<metric> of every copy to its record."""
    model.eval()
    for ms in metric_sets:
        for m in ms:
            m.reset()
    v_losses = []
    with torch.no_grad():
        for xb, yb in valid.epoch(epoch):
            preds, batch = run(stacked, xb, yb)  # (K, n, ...), (K,)
            v_losses.append(batch)
            for i, ms in enumerate(metric_sets):
                for m in ms:
                    m.accumulate(preds[i], yb)
    valid_loss = valid.mean_of(v_losses).tolist()
    for i, rec in enumerate(records):
        rec["valid_loss"] = valid_loss[i]
        rec.update({f"valid_{m.name}": m.value() for m in metric_sets[i]})
