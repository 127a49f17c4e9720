"""The one training loop: fit -> one_epoch -> one_batch, the seven steps by name.

    learn = Learner(model, train, valid, loss=mse, optimizer="sgd", lr=1e-5)
    result = learn.fit(10)          # -> FitResult(stopped="max_epochs", ...)

[1 init] is the model's constructor; [2 predict], [3 loss], [4 gradient] and
[5 step] are methods below; [6 repeat] is `fit`; [7 stop] is the loop bound plus
the stop rules (callbacks that raise CancelFit from an event). Anything special to
one optimizer or one model lives in that object (core/optim.py, fitting/), not here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from descent.core.events import Callback, Callbacks, CancelEpoch, CancelFit, StopReason
from descent.core.fused import choose_gradient
from descent.core.guards import default_callbacks
from descent.core.losses import get_loss
from descent.core.metrics import Metric, get_metric
from descent.core.optim import make_optimizer, needs_closure
from descent.core.parallel import place, run_on
from descent.core.result import FitResult
from descent.core.state import LearnerState
from descent.data.batches import Batches

if TYPE_CHECKING:
    from descent.distributed.group import Group


class Learner(LearnerState, Callbacks):
    """Trains `model` on `train` batches by gradient descent, watching `valid`.

    Args:
        model: any nn.Module mapping a batch of inputs to predictions.
        train, valid: Batches of in-memory tensors (valid may be None).
        loss: a loss name ("mse", "mae", "cross_entropy", ...) or a function
            (preds, targets) -> scalar.
        optimizer: a torch.optim name ("sgd", "adam", "adamw", "lbfgs") or a
            function params -> torch.optim.Optimizer.
        lr: learning rate. opt_kwargs: passed to the optimizer (momentum, ...).
        metrics: names or Metric objects, computed on the validation batches.
        callbacks: extra Callback objects (stop rules, plots, ...).
        progress: show the epoch table and a progress bar (ProgressDisplay).
        guards: stop cleanly on Ctrl-C / SIGTERM (InterruptHandler) and on a
            diverging loss (DivergenceGuard). A callback in `callbacks` of the
            same class replaces the default one.
        fused: None: step 4 by hand where it applies (core/fused.py); False: autograd.
        device: auto|cpu|cuda|cuda:N|mps: model and data move there once (None: stay).
        group: torchrun's processes (distributed/group.py; core/parallel.py for what changes).
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
        fused: bool | None = None,
        device: str | torch.device | None = None,
        group: Group | None = None,
    ) -> None:
        self.model, self.train_batches, self.valid_batches = model, train, valid
        self.loss_func = get_loss(loss) if isinstance(loss, str) else loss
        self.metrics = [get_metric(m) if isinstance(m, str) else m for m in metrics]
        self.lr = lr
        self.device = place(model, [train, valid], device, group)  # once (core/parallel.py)
        self.runner = run_on(self, group)  # one process, or torchrun's several
        self.opt = make_optimizer(optimizer, model.parameters(), lr, **(opt_kwargs or {}))
        net = self.runner.wrap(model)  # DistributedDataParallel with several processes
        gradient = choose_gradient(net, self.loss_func, fused, [train, valid])  # [2-4]
        self.gradient = self.runner.shard(gradient)
        self.reset_position()  # epoch 0, no step, an empty history (core/state.py)
        self.callbacks: list[Callback] = []
        callbacks = list(callbacks)
        given = {type(cb) for cb in callbacks}  # a callback given replaces the default of its kind
        defaults = [cb for cb in default_callbacks(progress, guards) if type(cb) not in given]
        self.add_callbacks(defaults + callbacks)

    # -- the seven steps ----------------------------------------------------------
    def predict(self, xb: torch.Tensor) -> torch.Tensor:
        """Step 2: predictions for a batch."""
        return self.gradient.predict(xb)

    def calc_loss(self, preds: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """Step 3: one number that says how wrong the predictions are."""
        return self.gradient.loss(preds, yb)

    def backward(self) -> None:
        """Step 4: the gradient of the loss for every parameter (autograd, or core/fused.py)."""
        self.gradient.backward(self.loss)

    def step(self) -> None:
        """Step 5: move the parameters against the gradient (torch.optim); L-BFGS is
        given `closure` to re-evaluate the loss at trial points."""
        self.opt.step(self.closure) if needs_closure(self.opt) else self.opt.step()
        self.steps += 1

    def zero_grad(self) -> None:
        """Forget the gradients: set them to None, as `opt.zero_grad()` does."""
        for group in self.opt.param_groups:
            for p in group["params"]:
                p.grad = None

    def closure(self) -> torch.Tensor:
        """Steps 2-4 again at the optimizer's current (trial) parameters."""
        self.zero_grad()
        loss = self.calc_loss(self.predict(self.xb), self.yb)
        self.gradient.backward(loss)
        return loss

    def one_batch(self) -> None:
        self.fire("before_batch")
        self.preds = self.predict(self.xb)  # [2 predict]
        self.fire("after_pred")
        self.loss = self.calc_loss(self.preds, self.yb)  # [3 loss]
        self.fire("after_loss")
        self.batch_losses.append(self.loss.detach())  # summed on device, synced per epoch
        if self.training:
            self.backward()  # [4 gradient]
            self.fire("after_backward")
            self.step()  # [5 step]
            self.zero_grad()
            self.batches_done += 1
            self.fire("after_step")
        self.runner.stop_point("after_batch")  # a stop on any process stops all

    # -- epochs ---------------------------------------------------------------------
    def train_epoch(self) -> None:
        """Train over the epoch's batches, from batch `batches_done` on (0, or where an
        interrupted epoch stopped); their losses are kept in `train_losses`."""
        self.training = True
        if not self.model.training:  # validate() left it in eval mode (nn.Module.train is slow)
            self.model.train()
        self.fire("before_train")
        self.batch_losses = self.train_losses
        start = self.batches_done
        try:
            batch_iter = enumerate(self.train_batches.epoch(self.epoch, start), start)
            for self.iter, (self.xb, self.yb) in batch_iter:  # noqa: B020
                self.one_batch()
        except CancelEpoch:
            pass
        self.train_loss = self.train_batches.mean_of(self.train_losses)
        self.fire("after_train")

    def validate(self) -> None:
        """Losses and metrics on the validation batches, under torch.no_grad()."""
        self.valid_loss = None
        if self.valid_batches is None:
            return
        self.training = False
        self.model.eval()
        self.fire("before_validate")
        for m in self.metrics:
            m.reset()
        with torch.no_grad():
            self.batch_losses = []
            batch_iter = enumerate(self.valid_batches.epoch(self.epoch))
            for self.iter, (self.xb, self.yb) in batch_iter:  # noqa: B020
                self.one_batch()
                for m in self.metrics:
                    m.accumulate(self.preds, self.yb)
            self.valid_loss = self.valid_batches.mean_of(self.batch_losses)
        self.fire("after_validate")

    def one_epoch(self) -> None:
        t0 = time.perf_counter()
        self.fire("before_epoch")
        self.train_epoch()
        self.validate()
        self.record = self._make_record(time.perf_counter() - t0)
        self.history.append(self.record)
        self.batches_done, self.train_losses = 0, []  # the epoch is complete
        self.runner.stop_point("after_epoch")

    def _make_record(self, seconds: float) -> dict[str, float]:
        # The one sync per epoch: losses and metrics become Python floats here, summed
        # over the processes first when there are several.
        self.runner.reduce_epoch()
        rec: dict[str, float] = {"epoch": self.epoch + 1, "train_loss": float(self.train_loss)}
        if self.valid_batches is not None:
            rec["valid_loss"] = float(self.valid_loss)
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
        stopped, message = StopReason.MAX_EPOCHS, f"ran all {epochs} epochs"
        self.stopped, self.stop_message = None, ""
        t0 = time.perf_counter()
        try:
            self.fire("before_fit")
            self.apply_pending_state()  # a checkpoint's callbacks and RNGs (core/state.py)
            while len(self.history) < epochs:
                self.epoch = len(self.history)  # the epoch in progress, 0-based
                self.one_epoch()
        except CancelFit as stop:
            stopped, message = stop.reason, stop.message
        except BaseException as e:
            stopped, message = StopReason.ERROR, f"{type(e).__name__}: {e}"
            raise
        finally:
            self.epoch = len(self.history)
            self.stopped, self.stop_message = stopped, message
            try:
                self.fire("after_fit")
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
            signal=self.interrupted_by,
        )

    def __repr__(self) -> str:
        loss = getattr(self.loss_func, "__name__", type(self.loss_func).__name__)
        cbs = ", ".join(cb.name for cb in self.callbacks)
        return (
            f"Learner(model={type(self.model).__name__}, loss={loss}, "
            f"opt={type(self.opt).__name__}(lr={self.lr:g}), callbacks=[{cbs}])"
        )
