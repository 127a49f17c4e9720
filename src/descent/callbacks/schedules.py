"""[5 step] Learning-rate schedules: torch.optim.lr_scheduler, driven by the loop.

    Learner(..., lr=0.01, callbacks=[Schedule("one-cycle")]).fit(10)

The names and what they do (t counts optimizer steps from 0, T = epochs x batches):

- constant:  lr stays as given.
- one-cycle: fastai's fit_one_cycle (OneCycleLR): the first 25% of the steps warm up
  from lr/25 to lr, the rest anneal to lr/(25 * 1e5), both halves along a cosine;
  momentum (SGD's, or Adam's beta1) cycles the opposite way, 0.95 -> 0.85 -> 0.95,
  when the optimizer has one (plain SGD without --momentum keeps none).
- cosine:    lr_t = lr * (1 + cos(pi * t / T)) / 2 (CosineAnnealingLR, to 0).
- step:      lr * gamma ** floor(epoch / step_size), gamma 0.1, step_size a third
  of the epochs by default (StepLR): three levels.
- plateau:   lr * factor (0.1) when valid_loss (train_loss without a validation
  set) has not improved for `patience` (2) epochs (ReduceLROnPlateau).

one-cycle and cosine change the rate after every step, step and plateau after every
epoch. The rates used are recorded (`lrs`, `momenta`, one per step), drawn by
`report.plots.plot_schedule`, and saved with every checkpoint with the scheduler's own state,
so a resumed run continues on the same curve.
"""

from __future__ import annotations

import math

import torch
from torch.optim import lr_scheduler

from descent.core.events import Callback
from descent.errors import ConfigError
from descent.options import check_schedule

PER_STEP = ("one-cycle", "cosine")


def _momentum_key(opt: torch.optim.Optimizer) -> str | None:
    """'momentum' or 'betas' when the optimizer has a momentum to cycle, else None."""
    group = opt.param_groups[0]
    if "betas" in group:
        return "betas"
    if group.get("momentum", 0) > 0:
        return "momentum"
    return None


def _momentum(group: dict) -> float | None:
    if "betas" in group:
        return float(group["betas"][0])
    return float(group["momentum"]) if "momentum" in group else None


class Schedule(Callback):
    """Changes the learning rate (and momentum) as training goes; see the module text.

    Args:
        name: one of SCHEDULES.
        pct_start, div_factor, final_div_factor, moms: one-cycle's shape (fastai's).
        step_size, gamma: step's (step_size in epochs; None: a third of them).
        patience, factor: plateau's.
    """

    order = 5  # after the step, before the displays and the checkpointer

    def __init__(
        self,
        name: str = "constant",
        *,
        pct_start: float = 0.25,
        div_factor: float = 25.0,
        final_div_factor: float = 1e5,
        moms: tuple[float, float] = (0.95, 0.85),
        step_size: int | None = None,
        gamma: float = 0.1,
        patience: int = 2,
        factor: float = 0.1,
    ) -> None:
        self.kind = check_schedule(name)
        self.pct_start, self.div_factor, self.final_div_factor = (
            pct_start,
            div_factor,
            final_div_factor,
        )
        self.moms, self.step_size, self.gamma = moms, step_size, gamma
        self.patience, self.factor = patience, factor
        self.scheduler: lr_scheduler.LRScheduler | lr_scheduler.ReduceLROnPlateau | None = None
        self.lrs: list[float] = []
        self.momenta: list[float] = []

    def before_fit(self) -> None:
        learner = self.learner
        opt = learner.opt
        # The schedule is built from the configured rate: on resume the optimizer holds
        # a rate from the middle of the curve, put back by load_state_dict afterwards.
        for group in opt.param_groups:
            group["lr"] = learner.lr
        steps = max(learner.n_epochs * len(learner.train_batches), 1)
        epochs = max(learner.n_epochs, 1)
        if self.kind == "one-cycle":
            key = _momentum_key(opt)
            self.scheduler = lr_scheduler.OneCycleLR(
                opt,
                max_lr=learner.lr,
                total_steps=steps,
                pct_start=self.pct_start,
                anneal_strategy="cos",
                div_factor=self.div_factor,
                final_div_factor=self.final_div_factor,
                cycle_momentum=key is not None,
                base_momentum=self.moms[1],
                max_momentum=self.moms[0],
            )
        elif self.kind == "cosine":
            self.scheduler = lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=0.0)
        elif self.kind == "step":
            size = self.step_size or max(1, math.ceil(epochs / 3))
            self.scheduler = lr_scheduler.StepLR(opt, step_size=size, gamma=self.gamma)
        elif self.kind == "plateau":
            self.scheduler = lr_scheduler.ReduceLROnPlateau(
                opt, mode="min", factor=self.factor, patience=self.patience
            )
        self.lrs, self.momenta = [], []

    def after_step(self) -> None:
        group = self.learner.opt.param_groups[0]
        self.lrs.append(float(group["lr"]))
        m = _momentum(group)
        if m is not None:
            self.momenta.append(m)
        if self.kind in PER_STEP:
            self.scheduler.step()

    def after_epoch(self) -> None:
        if self.kind == "step":
            self.scheduler.step()
        elif self.kind == "plateau":
            rec = self.learner.record
            value = rec.get("valid_loss", rec["train_loss"])
            self.scheduler.step(value if math.isfinite(value) else math.inf)

    def state_dict(self) -> dict:
        groups = self.learner.opt.param_groups
        return {
            "kind": self.kind,
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "groups": [{k: g[k] for k in ("lr", "momentum", "betas") if k in g} for g in groups],
            "lrs": torch.tensor(self.lrs, dtype=torch.float64),
            "momenta": torch.tensor(self.momenta, dtype=torch.float64),
        }

    def load_state_dict(self, state: dict) -> None:
        _check_state(state, self.scheduler, len(self.learner.opt.param_groups))
        if state["kind"] != self.kind:
            raise ConfigError(
                f"the checkpoint was made with --schedule {state['kind']}, not {self.kind}"
            )
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        for group, saved in zip(self.learner.opt.param_groups, state["groups"], strict=True):
            group.update({k: (tuple(v) if k == "betas" else v) for k, v in saved.items()})
        self.lrs = state["lrs"].tolist()
        self.momenta = state["momenta"].tolist()

    def describe(self) -> str:
        return f"Schedule({self.kind}): sets the learning rate " + (
            "after every step" if self.kind in PER_STEP else "after every epoch"
        )


def _same_kind(saved: object, fresh: object) -> bool:
    """A value of the type a fresh scheduler has there (numbers are one kind)."""
    number = (int, float)
    if isinstance(fresh, bool) or fresh is None:
        return type(saved) is type(fresh)
    if isinstance(fresh, number):
        return isinstance(saved, number) and not isinstance(saved, bool)
    if isinstance(fresh, (list, tuple)):
        return (
            isinstance(saved, (list, tuple))
            and len(saved) == len(fresh)
            and all(_same_kind(a, b) for a, b in zip(saved, fresh, strict=True))
        )
    if isinstance(fresh, dict):
        return (
            isinstance(saved, dict)
            and set(saved) == set(fresh)
            and all(_same_kind(saved[k], fresh[k]) for k in fresh)
        )
    return isinstance(saved, type(fresh))


def _check_state(state: dict, scheduler, n_groups: int) -> None:
    """TypeError unless `state` has the shape a Schedule of this run writes: a kind, the
    scheduler's state with the fields and types of this run's scheduler, a group of
    numbers per optimizer group, and 1-D tensors of rates and momenta."""
    groups = state["groups"]
    numbers = (int, float)
    ok = (
        isinstance(state["kind"], str)
        and (state["scheduler"] is None or scheduler is None
             or _same_kind(state["scheduler"], scheduler.state_dict()))
        and isinstance(groups, list) and len(groups) == n_groups
        and all(isinstance(g, dict) and all(
            isinstance(v, numbers) if k != "betas" else _same_kind(v, (0.0, 0.0))
            for k, v in g.items()) for g in groups)
        and all(isinstance(state[k], torch.Tensor) and state[k].dim() == 1
                for k in ("lrs", "momenta"))
    )  # fmt: skip
    if not ok:
        raise TypeError("kind, scheduler, groups, lrs or momenta of another kind")
