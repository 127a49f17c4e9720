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
`plot_schedule`, and saved with every checkpoint with the scheduler's own state,
so a resumed run continues on the same curve.
"""

from __future__ import annotations

import math

import torch
from torch.optim import lr_scheduler

from descent.config import SCHEDULES
from descent.errors import ConfigError
from descent.events import Callback

PER_STEP = ("one-cycle", "cosine")


def check_schedule(name: str) -> str:
    if name not in SCHEDULES:
        raise ConfigError(f"unknown --schedule {name!r}: choose one of {', '.join(SCHEDULES)}")
    return name


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


def plot_schedule(lrs: list[float], momenta: list[float] = (), title: str = "schedule"):
    """The learning rate (and momentum, on a second axis) at every step."""
    from descent.inline_figure import new_figure

    fig = new_figure(6, 3.2)
    ax = fig.add_subplot()
    ax.plot(range(1, len(lrs) + 1), lrs, color="tab:blue")
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate", color="tab:blue")
    if len(momenta) == len(lrs) and len(set(momenta)) > 1:
        ax2 = ax.twinx()
        ax2.plot(range(1, len(momenta) + 1), momenta, color="tab:orange")
        ax2.set_ylabel("momentum (SGD) / beta1 (Adam)", color="tab:orange")
    ax.set_title(title)
    return fig


def schedule_plots(learner, run) -> list:
    """plots/schedule.png in the run directory when a Schedule changed the rate."""
    from descent.plots import save_figure

    for cb in learner.callbacks:
        if isinstance(cb, Schedule) and cb.lrs:
            fig = plot_schedule(cb.lrs, cb.momenta, title=f"{cb.kind} schedule")
            return [save_figure(fig, run.plots / "schedule.png")]
    return []
