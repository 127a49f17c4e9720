"""The one training loop: fit -> one_epoch -> one_batch, the seven steps by name.

    learn = Learner(model, train, valid, loss=mse, optimizer="sgd", lr=1e-5)
    result = learn.fit(10)          # -> FitResult(stopped="max_epochs", ...)

[1 init] is the model's constructor; [2 predict], [3 loss], [4 gradient] and
[5 step] are methods below; [6 repeat] is `fit`; [7 stop] is the loop bound plus
the stop rules in stopping.py, which raise CancelFit from an event.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.optim.optimizer as _optim_module
from torch import nn

from descent.data.batches import Batches
from descent.events import EVENTS, Callback, CancelEpoch, CancelFit
from descent.history import History
from descent.losses import get_loss
from descent.metrics import Metric, get_metric
from descent.optim import make_optimizer
from descent.progress import ProgressDisplay
from descent.stopping import DivergenceGuard, InterruptHandler


@dataclass
class FitResult:
    """What `Learner.fit` returns: why it stopped, and what it did."""

    stopped: str  # max_epochs | early_stopping | diverged | target_reached | converged | ...
    message: str
    epochs: int  # epochs completed, over all calls to fit
    steps: int  # optimizer steps taken, over all calls to fit
    seconds: float
    history: History
    best_epoch: int | None = None  # 1-based, set by EarlyStopping
    signal: str | None = None  # "SIGINT" or "SIGTERM" when interrupted by one

    @property
    def interrupted(self) -> bool:
        return self.stopped == "interrupted"


class Learner:
    """Trains `model` on `train` batches by gradient descent, watching `valid`.

    Args:
        model: any nn.Module mapping a batch of inputs to predictions.
        train, valid: Batches of in-memory tensors (valid may be None).
        loss: a loss name ("mse", "mae", "cross_entropy", ...) or a function
            (preds, targets) -> scalar.
        optimizer: a torch.optim name ("sgd", "adam", "adamw", "lbfgs") or a
            function params -> torch.optim.Optimizer.
        lr: learning rate. opt_kwargs: passed to the optimizer (momentum, ...).
        metrics: names or Metric objects, computed on the validation batches
            (on the training batches when there is no validation set).
        callbacks: extra Callback objects (stop rules, plots, ...).
        progress: show the epoch table and a progress bar (ProgressDisplay).
        guards: stop cleanly on Ctrl-C / SIGTERM (InterruptHandler) and on a
            diverging loss (DivergenceGuard). A callback in `callbacks` of the
            same class replaces the default one.
    """

    def __init__(
        self,
        model: nn.Module,
        train: Batches,
        valid: Batches | None = None,
        *,
        loss: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = "mse",
        optimizer: str | Callable[..., torch.optim.Optimizer] = "sgd",
        lr: float = 1e-3,
        opt_kwargs: dict | None = None,
        metrics: Sequence[str | Metric] = (),
        callbacks: Iterable[Callback] = (),
        progress: bool = True,
        guards: bool = True,
    ) -> None:
        self.model, self.train_batches, self.valid_batches = model, train, valid
        self.loss_func = get_loss(loss) if isinstance(loss, str) else loss
        self.metrics = [get_metric(m) if isinstance(m, str) else m for m in metrics]
        self.lr = lr
        self.opt = make_optimizer(optimizer, model.parameters(), lr, **(opt_kwargs or {}))
        self._jacobian_based = getattr(self.opt, "jacobian_based", False)
        self.history = History()
        self.epoch = 0  # 0-based index of the epoch in progress; records say epoch + 1
        self.steps = 0
        self.best_epoch: int | None = None
        self.record: dict[str, float] = {}
        self.batches_done = 0  # training batches done in the epoch in progress
        self._train_losses: list[torch.Tensor] = []  # their losses (for a resumed epoch)
        self._pending_state: dict | None = None
        self._prepare_step()
        self.callbacks: list[Callback] = []
        self._handlers: dict[str, list[Callable[[], None]]] = {e: [] for e in EVENTS}
        callbacks = list(callbacks)
        defaults: list[Callback] = [InterruptHandler(), DivergenceGuard()] if guards else []
        if progress:
            defaults.append(ProgressDisplay())
        given = {type(cb) for cb in callbacks}  # a callback given replaces the default of its kind
        self.add_callbacks([cb for cb in defaults if type(cb) not in given] + callbacks)

    # -- callbacks ---------------------------------------------------------------
    def add_callbacks(self, callbacks: Iterable[Callback]) -> None:
        callbacks = list(callbacks)
        for cb in callbacks:
            cb.learner = self
            self.callbacks.append(cb)
        if callbacks:
            self._rebuild_handlers()

    def remove_callbacks(self, callbacks: Iterable[Callback]) -> None:
        callbacks = list(callbacks)
        for cb in callbacks:
            self.callbacks.remove(cb)
        if callbacks:
            self._rebuild_handlers()

    def _rebuild_handlers(self) -> None:
        # Only the events a callback overrides are stored: an unused event is a
        # loop over an empty list.
        self.callbacks.sort(key=lambda cb: cb.order)
        self._handlers = {
            e: [getattr(cb, e) for cb in self.callbacks if e in cb.handled_events()] for e in EVENTS
        }

    def _do(self, event: str) -> None:
        for handler in self._handlers[event]:
            handler()

    # -- the seven steps ----------------------------------------------------------
    def predict(self, xb: torch.Tensor) -> torch.Tensor:
        """Step 2: predictions for a batch."""
        return self.model(xb)

    def calc_loss(self, preds: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """Step 3: one number that says how wrong the predictions are."""
        return self.loss_func(preds, yb)

    def backward(self) -> None:
        """Step 4: the gradient of the loss with respect to every parameter.

        Jacobian-based optimizers (Levenberg-Marquardt) differentiate each residual
        inside their own step, so for them there is nothing to do here."""
        if not self._jacobian_based:
            self.loss.backward()

    def step(self) -> None:
        """Step 5: move the parameters against the gradient (torch.optim).

        The closure lets optimizers that re-evaluate the loss (L-BFGS) do so; the
        others call it once and get the loss already computed. Plain SGD (no
        momentum, no weight decay, no hooks) is the book's own update
        `p -= lr * p.grad`, applied here directly with the optimizer's lr: the same
        arithmetic as torch.optim.SGD's step, without its per-call bookkeeping
        (profiler hooks and grad-mode switching cost ~4x the update itself on a
        3-parameter model)."""
        if self._plain_sgd:
            for group in self.opt.param_groups:
                lr = -group["lr"]
                for p in group["params"]:
                    if p.grad is not None:
                        p.data.add_(p.grad, alpha=lr)
        else:
            self._fresh = True
            self.opt.step(self._closure)
        self.steps += 1

    def zero_grad(self) -> None:
        """Forget the gradients (set them to None, as `opt.zero_grad()` does)."""
        for p in self._opt_params:
            p.grad = None

    def _closure(self) -> torch.Tensor:
        if self._fresh:  # the gradient at the current parameters is already there
            self._fresh = False
            return self.loss
        self.opt.zero_grad(set_to_none=True)
        loss = self.calc_loss(self.predict(self.xb), self.yb)
        loss.backward()
        return loss

    def one_batch(self) -> None:
        h = self._handlers  # the events' handler lists, looped inline (the hot path)
        for f in h["before_batch"]:
            f()
        if self.training and self._jacobian_based:
            # [2 predict] and [3 loss] from the residuals the optimizer evaluates at
            # these parameters anyway (one forward pass per step, not two)
            self.preds, self.loss = self.opt.predictions_and_loss()
            for f in h["after_pred"]:
                f()
        else:
            self.preds = self.predict(self.xb)  # [2 predict]
            for f in h["after_pred"]:
                f()
            self.loss = self.calc_loss(self.preds, self.yb)  # [3 loss]
        for f in h["after_loss"]:
            f()
        self._batch_losses.append(self.loss.detach())  # summed on device, synced per epoch
        if self.training:
            self.backward()  # [4 gradient]
            for f in h["after_backward"]:
                f()
            self.step()  # [5 step]
            self.zero_grad()
            self.batches_done += 1
            for f in h["after_step"]:
                f()
        for f in h["after_batch"]:
            f()

    # -- epochs ---------------------------------------------------------------------
    def train_epoch(self) -> None:
        """Train over the epoch's batches, from batch `batches_done` on (0, or where an
        interrupted epoch stopped); its per-batch losses are kept in `_train_losses`."""
        self.training = True
        if not self.model.training:  # validate() left it in eval mode
            self.model.train()
        self._do("before_train")
        self._batch_losses = self._train_losses
        start = self.batches_done
        try:
            batch_iter = enumerate(self.train_batches.epoch(self.epoch, start), start)
            for self.iter, (self.xb, self.yb) in batch_iter:  # noqa: B020
                self.one_batch()
        except CancelEpoch:
            pass
        self.train_loss = self.train_batches.mean_of(self._train_losses)
        self._do("after_train")

    def validate(self) -> None:
        if self.valid_batches is None:
            self.valid_loss = None
            return
        self.training = False
        self.model.eval()
        self._do("before_validate")
        for m in self.metrics:
            m.reset()
        with torch.no_grad():
            self._batch_losses = []
            batch_iter = enumerate(self.valid_batches.epoch(self.epoch))
            for self.iter, (self.xb, self.yb) in batch_iter:  # noqa: B020
                self.one_batch()
                for m in self.metrics:
                    m.accumulate(self.preds, self.yb)
            self.valid_loss = self.valid_batches.mean_of(self._batch_losses)
        self._do("after_validate")

    def one_epoch(self) -> None:
        t0 = time.perf_counter()
        self._do("before_epoch")
        self.train_epoch()
        self.validate()
        self.record = self._make_record(time.perf_counter() - t0)
        self.history.append(self.record)
        self.batches_done, self._train_losses = 0, []  # the epoch is complete
        self._do("after_epoch")

    def _make_record(self, seconds: float) -> dict[str, float]:
        # The one sync per epoch: losses and metrics become Python floats here.
        rec: dict[str, float] = {"epoch": self.epoch + 1, "train_loss": _item(self.train_loss)}
        if self.valid_batches is not None:
            rec["valid_loss"] = _item(self.valid_loss)
            rec.update({f"valid_{m.name}": m.value() for m in self.metrics})
        rec["time"] = seconds
        return rec

    def fit(self, epochs: int, callbacks: Iterable[Callback] = ()) -> FitResult:
        """Train until `epochs` epochs in all have run or a stop rule fires [6 repeat, 7 stop].

        Calling fit again continues from the epoch reached (epochs counts from the
        first call), also in the middle of an interrupted epoch, and so does a learner
        given a checkpoint with `load_state_dict`. `callbacks` are attached for this
        call only."""
        extra = list(callbacks)
        self.add_callbacks(extra)
        self.n_epochs = epochs
        stopped, message = "max_epochs", f"ran all {epochs} epochs"
        self.stopped, self.stop_message = None, ""  # set when this fit ends
        t0 = time.perf_counter()
        try:
            self._do("before_fit")
            self._prepare_step()
            finished = self._apply_pending_state()
            if finished is not None:  # a checkpoint of a run that had already stopped
                raise CancelFit(*finished)
            while len(self.history) < epochs:
                self.epoch = len(self.history)  # the epoch in progress, 0-based
                self.one_epoch()
        except CancelFit as stop:
            stopped, message = stop.reason, stop.message
        except BaseException as e:
            stopped, message = "error", f"{type(e).__name__}: {e}"
            raise
        finally:
            self.epoch = len(self.history)
            self.stopped, self.stop_message = stopped, message
            try:
                self._do("after_fit")
            finally:
                self.remove_callbacks(extra)
        return FitResult(
            stopped=stopped,
            message=message,
            epochs=self.epoch,
            steps=self.steps,
            seconds=time.perf_counter() - t0,
            history=self.history,
            best_epoch=self.best_epoch,
            signal=getattr(self, "interrupted_by", None),
        )

    def _prepare_step(self) -> None:
        # Decided once per fit, after the callbacks' before_fit (an lr scheduler made
        # there wraps opt.step, and then torch.optim does every step).
        opt = self.opt
        self._opt_params = [p for g in opt.param_groups for p in g["params"]]
        self._plain_sgd = (
            type(opt) is torch.optim.SGD
            and "step" not in vars(opt)
            and not (opt._optimizer_step_pre_hooks or opt._optimizer_step_post_hooks)
            and not (_optim_module._global_optimizer_pre_hooks
                     or _optim_module._global_optimizer_post_hooks)
            and all(
                g["momentum"] == 0 and g["weight_decay"] == 0 and not g["maximize"]
                and not g.get("differentiable", False)
                for g in opt.param_groups
            )
        )  # fmt: skip

    # -- checkpoints ---------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to continue exactly: parameters, optimizer, position
        (epochs done, batches done in the next), the partial epoch's losses, history,
        callbacks' states and RNG states. Tensors stay tensors (checkpoint.py stores
        them in safetensors, the rest as JSON)."""
        from descent.checkpoint import rng_state

        names = _callback_keys(self.callbacks)
        return {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "epochs_done": len(self.history),
            "batches_done": self.batches_done,
            "train_losses": list(self._train_losses),
            "steps": self.steps,
            "best_epoch": self.best_epoch,
            "history": [dict(r) for r in self.history],
            "callbacks": {k: cb.state_dict() for k, cb in zip(names, self.callbacks, strict=True)},
            "rng": rng_state(),
            "stopped": getattr(self, "stopped", None),
            "stop_message": getattr(self, "stop_message", ""),
        }

    def load_state_dict(self, state: dict) -> None:
        """Take a state_dict: parameters, optimizer and position at once, the
        callbacks' states when the next fit has run their before_fit."""
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.history = History(state["history"])
        self.epoch = state["epochs_done"]
        self.batches_done = state["batches_done"]
        self._train_losses = list(state["train_losses"])
        self.steps = state["steps"]
        self.best_epoch = state["best_epoch"]
        if self.history.rows:
            self.record = dict(self.history.rows[-1])
        self._pending_state = state

    def _apply_pending_state(self) -> tuple[str, str] | None:
        state, self._pending_state = self._pending_state, None
        if state is None:
            return None
        from descent.checkpoint import set_rng_state

        names = _callback_keys(self.callbacks)
        for key, cb in zip(names, self.callbacks, strict=True):
            if key in state["callbacks"]:
                cb.load_state_dict(state["callbacks"][key])
        set_rng_state(state["rng"])
        done = state["stopped"] not in (None, "interrupted", "error")
        return (state["stopped"], state["stop_message"]) if done else None

    # -- showing the loop -----------------------------------------------------------
    def explain(self) -> str:
        """The seven-step loop as text, with the callbacks attached to each event."""
        from descent.explain import explain_loop

        return explain_loop(self)

    def __repr__(self) -> str:
        cbs = ", ".join(cb.name for cb in self.callbacks)
        return (
            f"Learner(model={type(self.model).__name__}, loss={_name(self.loss_func)}, "
            f"opt={type(self.opt).__name__}(lr={self.lr:g}), callbacks=[{cbs}])"
        )


def _callback_keys(callbacks: list[Callback]) -> list[str]:
    """Names that identify callbacks in a checkpoint: the class name, with #2, #3
    for further ones of the same class."""
    seen: dict[str, int] = {}
    keys = []
    for cb in callbacks:
        seen[cb.name] = seen.get(cb.name, 0) + 1
        keys.append(cb.name if seen[cb.name] == 1 else f"{cb.name}#{seen[cb.name]}")
    return keys


def _item(x: torch.Tensor | None) -> float:
    return float("nan") if x is None else float(x)


def _name(f: object) -> str:
    return getattr(f, "__name__", type(f).__name__)
