"""Train K copies of a model at K learning rates at once: one vectorised computation.

    result = lr_sweep(model, train, valid, loss="bce", lrs=parse_lrs("1e-3:10:16"), epochs=3)
    result.best_lr, result.best_loss, result.diverged

Every copy starts from the model's current parameters and sees the same batches,
in the same seeded order, as a Learner would. Each parameter is held stacked (K, ...),
row i for copy i; the model runs once per batch for all copies with
`torch.func.vmap(functional_call)` (a linear layer becomes one (K*k, 784) @ (784, n)
product), the K losses are summed and one backward pass gives each copy its own
gradient. torch.optim (lr 1) turns the gradients into each copy's update direction,
which copy i takes at its own rate. Per-rate histories match K separate runs to float
tolerance (tests/test_sweep.py), at a fraction of the cost (bench/lr_sweep.py).

Diverged: a copy whose epoch train_loss is not finite, or more than 1e4 times its
first epoch's (DivergenceGuard's rule), is marked diverged at that epoch; from then
on it is frozen (rate 0, its last parameters kept) and left out of the comparison.
Best: among the copies that did not diverge, the lowest best-epoch valid_loss
(train_loss without a validation set).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import functional_call, vmap

from descent import losses
from descent.data.batches import Batches
from descent.errors import ConfigError
from descent.losses import get_loss
from descent.metrics import Metric, get_metric
from descent.optim import make_optimizer

DIVERGENCE_FACTOR = 1e4
SWEEP_OPTIMIZERS = ("sgd", "adam", "adamw")


def parse_lrs(text: str) -> list[float]:
    """'1e-3:10:16' -> 16 rates log-spaced from 1e-3 to 10 (both included);
    '0.01,0.1,1' -> those rates."""
    example = "use LO:HI:K (e.g. --lrs 1e-3:10:16) or a list (e.g. --lrs 0.01,0.1,1)"
    try:
        if ":" in text:
            lo_s, hi_s, k_s = text.split(":")
            lo, hi, k = float(lo_s), float(hi_s), int(k_s)
            if not (0 < lo < hi < math.inf) or k < 2:
                raise ValueError
            return [lo * (hi / lo) ** (i / (k - 1)) for i in range(k)]
        lrs = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--lrs {text!r}: {example}") from None
    if not lrs or not all(0 < v < math.inf for v in lrs):
        raise ConfigError(f"--lrs {text!r}: rates must be positive numbers; {example}")
    return lrs


@dataclass
class SweepResult:
    lrs: list[float]
    histories: list[list[dict]]  # per rate: per-epoch records, as Learner.history
    diverged: list[int | None]  # per rate: the epoch (1-based) it diverged at, or None
    monitor: str  # what best_loss is of: valid_loss or train_loss
    seconds: float = 0.0
    final_states: list[dict] = field(default_factory=list, repr=False)

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
        ok = [
            i
            for i, (b, d) in enumerate(zip(self.best_loss, self.diverged, strict=True))
            if d is None and math.isfinite(b)
        ]
        return min(ok, key=lambda i: self.best_loss[i]) if ok else None

    @property
    def best_lr(self) -> float | None:
        i = self.best_index
        return None if i is None else self.lrs[i]

    def params(self, i: int) -> dict[str, torch.Tensor]:
        """Copy i's final parameters, as a state_dict of the original model."""
        return self.final_states[i]

    def table(self) -> str:
        metric = [k for k in (self.histories[0][-1] if self.histories[0] else {})
                  if k.startswith("valid_") and k != "valid_loss"]  # fmt: skip
        head = ["lr", f"final {self.monitor}", f"best {self.monitor}", *metric, ""]
        rows = []
        best = self.best_index
        for i, lr in enumerate(self.lrs):
            last = self.histories[i][-1] if self.histories[i] else {}
            note = (
                f"diverged at epoch {self.diverged[i]}"
                if self.diverged[i] is not None
                else ("<- best" if i == best else "")
            )
            rows.append(
                [f"{lr:.3g}", _fmt(self.final_loss[i]), _fmt(self.best_loss[i]),
                 *[_fmt(last.get(m, math.nan)) for m in metric], note]
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
            "best_lr": self.best_lr,
            "seconds": self.seconds,
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
) -> SweepResult:
    """Train len(lrs) copies of `model` at once, one per rate; see the module text."""
    if optimizer not in SWEEP_OPTIMIZERS:
        raise ConfigError(
            f"lr-sweep trains with {', '.join(SWEEP_OPTIMIZERS)}, not {optimizer!r} "
            "(L-BFGS and Levenberg-Marquardt search their own step lengths)"
        )
    lrs = [float(v) for v in lrs]
    if not lrs:
        raise ConfigError("lr-sweep needs at least one rate")
    if epochs < 1:
        raise ConfigError(f"--epochs must be at least 1, got {epochs}")
    loss_func = get_loss(loss) if isinstance(loss, str) else loss
    k = len(lrs)
    t0 = time.perf_counter()
    kwargs = dict(opt_kwargs or {})
    wd = float(kwargs.pop("weight_decay", 0.0 if optimizer != "adamw" else 0.01))
    buffers = dict(model.named_buffers())
    # stacked[name]: (K, ...) leaf, row i = copy i's parameter
    stacked = {
        n: p.detach().unsqueeze(0).repeat(k, *[1] * p.dim()).requires_grad_(True)
        for n, p in model.named_parameters()
    }
    # torch.optim computes each step's direction on zero-based twins (lr 1), which every
    # copy then takes at its own rate: P_i += lr_i * delta_i (see _step)
    twins = {n: torch.zeros_like(v) for n, v in stacked.items()}
    opt = make_optimizer(optimizer, list(twins.values()), 1.0, **kwargs)
    rates = torch.tensor(lrs, dtype=next(iter(stacked.values())).dtype)

    def forward(params, xb, yb):
        preds = functional_call(model, (params, buffers), (xb,))
        return preds, loss_func(preds, yb)

    generic = vmap(forward, in_dims=(0, None, None))  # -> (K, n, ...), (K,)
    per_copy = STACKED_LOSSES.get(loss_func)

    def run(params, xb, yb):
        # Models that can run K copies themselves (one big matrix product) and the
        # built-in losses skip vmap's per-call overhead; anything else is vmapped.
        if per_copy is not None and hasattr(model, "forward_stacked"):
            preds = model.forward_stacked(params, xb)
            if _accepts(loss_func, preds, yb):
                return preds, per_copy(preds, yb)
        return generic(params, xb, yb)

    metric_sets = [
        [copy.deepcopy(get_metric(m) if isinstance(m, str) else m) for m in metrics]
        for _ in range(k)
    ]
    alive = torch.ones(k, dtype=torch.bool)
    diverged: list[int | None] = [None] * k
    first: list[float | None] = [None] * k
    histories: list[list[dict]] = [[] for _ in range(k)]
    was_training = model.training
    for epoch in range(epochs):
        e0 = time.perf_counter()
        model.train()
        batch_losses = []
        for xb, yb in train.epoch(epoch):
            _, losses = run(stacked, xb, yb)  # (K,)
            torch.where(alive, losses, torch.zeros_like(losses)).sum().backward()
            _step(opt, stacked, twins, rates, optimizer, wd)
            batch_losses.append(losses.detach())
        train_loss = _weighted(train, batch_losses)  # (K,)
        records = [{"epoch": epoch + 1, "train_loss": float(v)} for v in train_loss]
        if valid is not None:
            model.eval()
            for ms in metric_sets:
                for m in ms:
                    m.reset()
            v_losses = []
            with torch.no_grad():
                for xb, yb in valid.epoch(epoch):
                    preds, losses = run(stacked, xb, yb)
                    v_losses.append(losses)
                    for i, ms in enumerate(metric_sets):
                        for m in ms:
                            m.accumulate(preds[i], yb)
            valid_loss = _weighted(valid, v_losses)
            for i, rec in enumerate(records):
                rec["valid_loss"] = float(valid_loss[i])
                rec.update({f"valid_{m.name}": m.value() for m in metric_sets[i]})
        seconds = (time.perf_counter() - e0) / k
        for i, rec in enumerate(records):
            rec["time"] = seconds
            if diverged[i] is not None:
                continue
            histories[i].append(rec)
            tl = rec["train_loss"]
            if first[i] is None and math.isfinite(tl):
                first[i] = tl
            if not math.isfinite(tl) or (
                first[i] is not None and tl > DIVERGENCE_FACTOR * first[i]
            ):
                diverged[i], alive[i] = epoch + 1, False
                rates[i] = 0.0  # frozen from now on
    model.train(was_training)
    final = [{n: v[i].detach().clone() for n, v in stacked.items()} for i in range(k)]
    return SweepResult(
        lrs=lrs,
        histories=histories,
        diverged=diverged,
        monitor="valid_loss" if valid is not None else "train_loss",
        seconds=time.perf_counter() - t0,
        final_states=final,
    )


@torch.no_grad()
def _step(opt, stacked, twins, rates, optimizer: str, wd: float) -> None:
    """One update of every copy: torch.optim's direction, each copy at its own rate.

    The twins D start every step at zero with D.grad = the copies' gradients, so after
    `opt.step()` (lr 1) D = -u, u the update torch.optim would make at lr 1 (SGD:
    the momentum buffer; Adam: m_hat / (sqrt(v_hat) + eps)); copy i then moves by
    lr_i * D_i. Weight decay is applied as torch.optim does: SGD and Adam add wd * p to
    the gradient, AdamW first scales p by (1 - lr * wd)."""
    for n, p in stacked.items():
        d = twins[n]
        rate = rates.view(-1, *[1] * (p.dim() - 1)).to(p.dtype)
        g = p.grad
        if g is None:
            continue
        g = torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)  # frozen copies' garbage
        if wd and optimizer != "adamw":
            g = g.add(p, alpha=wd)
        d.zero_()
        d.grad = g
        if wd and optimizer == "adamw":
            p.mul_(1 - rate * wd)
    opt.step()
    for n, p in stacked.items():
        d = twins[n]
        p.add_(d * rates.view(-1, *[1] * (p.dim() - 1)).to(p.dtype))
        p.grad = None
        d.grad = None


def _stacked_mse(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return (p - t).pow(2).reshape(len(p), -1).mean(1)


def _stacked_mae(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return (p - t).abs().reshape(len(p), -1).mean(1)


def _stacked_mnist(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    s = p.reshape(len(p), -1).sigmoid()
    return torch.where(t.reshape(1, -1) == 1, 1 - s, s).mean(1)


def _stacked_bce(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    p = p.reshape(len(p), -1)
    t = t.reshape(1, -1).to(p.dtype).expand_as(p)
    return F.binary_cross_entropy_with_logits(p, t, reduction="none").mean(1)


def _stacked_cross_entropy(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    kk, n, k = p.shape
    return F.cross_entropy(p.reshape(kk * n, k), t.repeat(kk), reduction="none").view(kk, n).mean(1)


# The built-in losses (losses.py) of K stacked predictions (K, n, ...) -> (K,): the same
# per-copy means, computed for all copies in one call.
STACKED_LOSSES = {
    losses.mse: _stacked_mse,
    losses.mae: _stacked_mae,
    losses.mnist_loss: _stacked_mnist,
    losses.bce: _stacked_bce,
    losses.cross_entropy: _stacked_cross_entropy,
}


def _accepts(loss_func, preds: torch.Tensor, yb: torch.Tensor) -> bool:
    """Whether the built-in loss takes one copy's predictions preds[i] for targets yb
    (otherwise the vmapped call runs, and raises the loss's own shape error)."""
    shape = tuple(preds.shape[1:])
    if loss_func in (losses.mse, losses.mae):
        return shape == tuple(yb.shape)
    if yb.dim() != 1 or not shape or shape[0] != len(yb):
        return False
    if loss_func in (losses.bce, losses.mnist_loss):
        return shape[1:] in ((), (1,))
    return len(shape) == 2  # cross_entropy


def _weighted(batches: Batches, losses: list[torch.Tensor]) -> torch.Tensor:
    """(K,) sample-weighted means of per-batch mean losses, as Batches.mean_of."""
    if len(losses) == 1:
        return losses[0]
    sizes = batches._sizes[: len(losses)]
    stacked = torch.stack(losses).to(torch.float64)  # (B, K)
    return (stacked * sizes[:, None]).sum(0) / sizes.sum()


def sweep_plot(result: SweepResult, path: str | Path) -> Path:
    """The K loss curves on a log axis, diverged ones dashed and marked."""
    import matplotlib as mpl
    from matplotlib.figure import Figure

    from descent.plots import save_figure

    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    cmap = mpl.colormaps["viridis"]
    best = result.best_index
    for i, (lr, h) in enumerate(zip(result.lrs, result.histories, strict=True)):
        xs = [r["epoch"] for r in h]
        ys = [r[result.monitor] if math.isfinite(r[result.monitor]) else math.nan for r in h]
        color = cmap(i / max(len(result.lrs) - 1, 1))
        if result.diverged[i] is not None:
            ax.plot(xs, ys, "--x", color=color, alpha=0.6, label=f"{lr:.2g} (diverged)")
        else:
            ax.plot(xs, ys, "-o", ms=3, color=color, lw=2.5 if i == best else 1.2,
                    label=f"{lr:.2g}" + (" (best)" if i == best else ""))  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(result.monitor)
    ax.set_title(f"{len(result.lrs)} learning rates trained at once")
    ax.legend(fontsize=7, ncol=2, title="lr")
    return save_figure(fig, Path(path))
