"""`descent train`: a classifier on images by per-pixel weights (or a small net),
with the epoch table, a run directory, plots of what it learned, and a summary."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from rich.console import Console

from descent.callbacks.checkpointer import Checkpointer
from descent.callbacks.schedules import Schedule
from descent.callbacks.stopping import EarlyStopping
from descent.commands.baseline import baseline_accuracy, baseline_line, train_mean
from descent.commands.config import TrainConfig, check_options
from descent.commands.runs import (
    Continuation,
    Finishing,
    check_outputs,
    start_run,
    with_absolute_paths,
    write_summary,
)
from descent.commands.train_result import TrainResult
from descent.core.events import Callback, StopReason
from descent.core.learner import Learner
from descent.core.losses import get_loss
from descent.core.metrics import (
    class_probabilities,
    confusion_matrix,
    per_class_accuracy,
    predicted_class,
    scores_of,
)
from descent.core.progress import ProgressDisplay
from descent.core.result import FitResult
from descent.data.batches import Batches
from descent.data.deskew_choice import choose_deskew
from descent.data.images import ImageData, load_images
from descent.data.preprocess import Preprocess
from descent.distributed.devices import describe_device, resolve_device
from descent.distributed.group import Group
from descent.distributed.process import Process
from descent.distributed.threads import set_threads
from descent.errors import ConfigError
from descent.io.checkpoints import load_learner_state
from descent.io.limits import TRAINING_COPIES, check_memory, model_bytes
from descent.io.models import save_model
from descent.io.rundir import RunDir
from descent.models import MLP, PixelClassifier
from descent.options import (
    CLASSIFIER_LOSSES,
    IMAGE_MODELS,
    ONE_OUTPUT_LOSSES,
    check_choice,
    parse_every,
)
from descent.report.html import write_run_report
from descent.report.plots import (
    plot_confusion,
    plot_image_grid,
    plot_losses,
    plot_lr_find,
    plot_metric,
    plot_weight_images,
    save_figure,
    schedule_plots,
)
from descent.tuning.lr_find import lr_find
from descent.watch.session import WatchSession


def choose_loss(cfg: TrainConfig, k: int) -> str:
    """The loss for k classes: cfg.loss, or for "auto" bce (one output) with two
    classes and cross_entropy with more."""
    check_choice("--loss", cfg.loss, CLASSIFIER_LOSSES)
    loss = ("bce" if k == 2 else "cross_entropy") if cfg.loss == "auto" else cfg.loss
    get_loss(loss)  # a ConfigError for unknown names
    if loss in ONE_OUTPUT_LOSSES and k != 2:
        raise ConfigError(
            f"--loss {loss} has one output and needs exactly two classes, the data has {k}: "
            "use --loss cross_entropy, or pick two with --classes"
        )
    if loss not in ONE_OUTPUT_LOSSES + ("cross_entropy",):
        raise ConfigError(
            f"--loss {loss} is for regression; classifiers take mnist, bce or cross_entropy"
        )
    return loss


def make_model(cfg: TrainConfig, n_pixels: int, n_outputs: int) -> torch.nn.Module:
    """The model of cfg for images of n_pixels and n_outputs scores, refused before it
    is allocated when it would not fit in memory while it trains."""
    if cfg.model == "mean":
        raise ConfigError(
            "--model mean has no parameters to step, so no learning rate or training loop: "
            "`descent train SOURCE --model mean` averages the images of each class"
        )
    return _model_builder(cfg, n_pixels, n_outputs)()


def _model_builder(cfg: TrainConfig, n_pixels: int, n_outputs: int):
    """A function that builds cfg's model, once its memory is known to fit (ConfigError,
    with the figures and the option to change, if not)."""
    check_choice("--model", cfg.model, IMAGE_MODELS)

    def build() -> torch.nn.Module:
        if cfg.model == "linear":
            return PixelClassifier(n_pixels, n_outputs, init_std=cfg.init_std, seed=cfg.seed)
        return MLP(n_pixels, cfg.hidden, n_outputs, seed=cfg.seed)

    hidden = f" --hidden {cfg.hidden}" if cfg.model == "mlp" else ""
    check_memory(
        model_bytes(build) * TRAINING_COPIES,
        f"--model {cfg.model}{hidden} on {n_pixels:,}-pixel images with {n_outputs} outputs "
        f"(its parameters, gradients, optimizer state and copies, x{TRAINING_COPIES})",
        "use a smaller --hidden" if cfg.model == "mlp" else "use smaller images or fewer --classes",
    )
    return build


@dataclass
class TrainData:
    """Everything `descent train` derives from its config before the learner."""

    data: ImageData
    pre: Preprocess
    loss: str
    train_x: torch.Tensor  # preprocessed uint8 images
    valid_x: torch.Tensor
    n_outputs: int
    deskew_found: str | None = None  # why, when cfg.deskew was "auto"


def prepare_data(cfg: TrainConfig) -> TrainData:
    data = load_images(cfg.source, classes=cfg.classes, valid_pct=cfg.valid_pct, seed=cfg.seed)
    loss = choose_loss(cfg, len(data.labels))
    n_outputs = 1 if loss in ONE_OUTPUT_LOSSES else len(data.labels)
    found, straighten = None, cfg.deskew
    if cfg.deskew == "auto":
        choice = choose_deskew(
            data.train_x, data.train_y, data.valid_x, data.valid_y, seed=cfg.seed
        )
        found, straighten = choice.describe(), choice.deskew
    pre = Preprocess(size=data.size, deskew=bool(straighten))
    train_x = pre.apply(data.train_x)
    # Only the processed training images are kept (the raw validation images stay, for
    # the plot of mistakes): one uint8 copy of the data set in memory, not two.
    data.train_x = train_x
    return TrainData(data, pre, loss, train_x, pre.apply(data.valid_x), n_outputs, found)


def make_learner(
    cfg: TrainConfig,
    td: TrainData,
    lr: float,
    callbacks: Sequence[Callback] = (),
    device: torch.device | str | None = None,
    group: Group | None = None,
) -> Learner:
    """A fresh model (seeded by cfg.seed) and its learner, as `descent train` runs it:
    on `device` (None: cfg.device), and with `group` on its share of every batch."""
    h, w = td.data.size
    has_valid = len(td.valid_x) > 0
    return Learner(
        make_model(cfg, h * w, td.n_outputs),
        Batches(td.train_x, td.data.train_y, cfg.batch_size, seed=cfg.seed),
        Batches(td.valid_x, td.data.valid_y, max(cfg.batch_size, 1024)) if has_valid else None,
        loss=td.loss,
        optimizer=cfg.optimizer,
        lr=lr,
        opt_kwargs=_opt_kwargs(cfg),
        metrics=["accuracy"] if has_valid else [],
        callbacks=callbacks,
        progress=False,
        fused=False if cfg.autograd else None,  # None: by hand where it applies
        device=cfg.device if device is None else device,
        group=group,
    )


def epochs_for(cfg: TrainConfig, batches_per_epoch: int) -> int:
    if cfg.steps is None:
        return cfg.max_epochs()
    return -(-cfg.steps // batches_per_epoch)


def train_command(
    cfg: TrainConfig,
    console: Console | None = None,
    *,
    overwrite: bool = False,
    resume: Continuation | None = None,
    callbacks: Sequence[Callback] = (),
    watch: WatchSession | None = None,
) -> TrainResult:
    """`descent train`: load images, train, write the run directory, print the summary.

    The run folder (cfg.out) must be new or empty; `overwrite` replaces a previous
    descent run there (io/rundir.py). `resume` continues a run from a checkpoint
    (commands/resume.py); `callbacks` are added to the learner's; `watch` (--watch)
    feeds the live page and takes its Stop. `cfg.lr` "auto" runs the learning-rate
    finder first (lr_find.py) and trains at its suggestion; config.json records the
    rate chosen."""
    console = console or Console(highlight=False, soft_wrap=True)
    process = Process.from_env()
    if not process.is_main:  # torchrun's other processes: train their share, write nothing
        return train_worker(cfg, process, resume)
    say = (lambda *a, **k: None) if cfg.quiet else console.print
    check_options(cfg)  # before any file is read or written
    check_outputs(cfg, overwrite, resuming=resume is not None)
    cfg = with_absolute_paths(cfg)
    threads = set_threads(cfg.threads)
    td = prepare_data(cfg)
    data, labels, (h, w) = td.data, td.data.labels, td.data.size
    if cfg.model != "mean":
        _model_builder(cfg, h * w, td.n_outputs)  # its memory, before the run folder is made
    # config.json holds what was decided, not "auto" or None
    cfg = replace(cfg, deskew=td.pre.deskew, deskew_found=td.deskew_found or cfg.deskew_found)
    header = (
        f"[bold]descent train[/] {data.source}: {len(td.train_x)} training and "
        f"{len(td.valid_x)} validation images ({data.split}), {h}x{w}, "
        f"classes {', '.join(labels)}"
    )
    if cfg.model == "mean":  # nothing to step: no loss, rate or loop (commands/baseline.py)
        return train_mean(cfg, data, td.pre, td.valid_x, header, console, overwrite=overwrite)
    device = resolve_device(cfg.device, process)
    group = Group.start(device, process)  # None for one process
    cfg = replace(cfg, epochs=cfg.max_epochs(), world_size=process.world_size)
    learner = None
    try:
        found = None
        if cfg.lr == "auto":  # every process finds the same rate on its own
            found = lr_find(make_learner(cfg, td, 1e-3, device=device))
            cfg = replace(cfg, lr=found.suggestion, lr_found=found.describe())
        run, cfg = start_run(
            cfg, "train", cfg.source, overwrite=overwrite, continuation=resume,
            warn=lambda m: console.print(f"[yellow]warning:[/] {m}"),
        )  # fmt: skip
        try:
            say(header)
            say(
                f"device {describe_device(device)}, {threads} thread{'s' * (threads > 1)}"
                + (f", {group.describe()}" if group else "")
            )
            if td.deskew_found:
                say(f"deskew auto: {td.deskew_found}")
            if found is not None:
                save_figure(plot_lr_find(found), run.plot("lr_find.png"))
                say(f"--lr auto: {found.describe()}; plot {run.plots / 'lr_find.png'}")
            checkpointer = Checkpointer(
                run.checkpoints, parse_every(cfg.checkpoint_every), cfg.keep, {"run_id": run.run_id}
            )
            callbacks = [checkpointer, *callbacks]
            if watch is not None:
                weights = [f"{labels[1]} vs {labels[0]}"] if td.n_outputs == 1 else labels
                callbacks += watch.callbacks(run.path.name, config=cfg.to_dict(), labels=weights)
            callbacks += _stop_rules(cfg)
            if not cfg.quiet:
                callbacks.append(ProgressDisplay(console))
            learner = make_learner(cfg, td, cfg.lr, callbacks, device, group)
            say(
                f"model {learner.model!r}, loss {td.loss}, {cfg.optimizer} lr {cfg.lr:g}"
                + (f" ({cfg.schedule} schedule)" if cfg.schedule != "constant" else "")
                + (
                    ", no early stopping"
                    if cfg.patience is None and not cfg.early_stopping_patience()
                    else ""
                )
                + f", batch {cfg.batch_size}"
                + (", deskewed" if cfg.deskew else ", raw pixels")
            )
            say(f"gradient: {learner.gradient.describe()}")
            epochs = epochs_for(cfg, len(learner.train_batches))
            if cfg.steps is not None:
                say(f"{cfg.steps} steps = {epochs} epochs of {len(learner.train_batches)} batches")
            if resume is not None:
                load_learner_state(learner, resume.checkpoint)
            with Finishing() as finishing:
                result = learner.fit(epochs)
                if result.stopped == StopReason.INTERRUPTED:
                    console.print(checkpointer.note(run, result.message))
                return finish_train(cfg, learner, result, td, run, console, finishing)
        finally:
            if resume is None:
                run.close()
    finally:
        leave_group(group, learner)


def _stop_rules(cfg: TrainConfig) -> list[Callback]:
    """The schedule and early stopping of cfg."""
    rules: list[Callback] = []
    if cfg.schedule != "constant":
        rules.append(Schedule(cfg.schedule))
    patience = cfg.early_stopping_patience()
    if patience > 0:
        rules.append(EarlyStopping(patience=patience))
    return rules


def train_worker(cfg: TrainConfig, process: Process, resume: Continuation | None) -> TrainResult:
    """A process of rank > 0 under torchrun: the same data, model and stop rules as rank
    0, its share of every batch; no run folder, no output. It waits for rank 0's files
    (the barrier in Group.close) before it leaves."""
    cfg = with_absolute_paths(cfg)
    set_threads(cfg.threads)
    td = prepare_data(cfg)
    cfg = replace(cfg, deskew=td.pre.deskew, epochs=cfg.max_epochs())
    device = resolve_device(cfg.device, process)
    group = Group.start(device, process)
    learner = None
    try:
        if cfg.lr == "auto":
            cfg = replace(cfg, lr=lr_find(make_learner(cfg, td, 1e-3, device=device)).suggestion)
        learner = make_learner(cfg, td, cfg.lr, _stop_rules(cfg), device, group)
        if resume is not None:
            load_learner_state(learner, resume.checkpoint)
        result = learner.fit(epochs_for(cfg, len(learner.train_batches)))
        return TrainResult(result, None, {}, [], td.data.labels, None, learner.model)
    finally:
        leave_group(group, learner)


def leave_group(group: Group | None, learner: Learner | None) -> None:
    """The teardown that exits cleanly: the DDP wrapper (inside the learner's gradient)
    and the optimizer dropped, then barrier, then destroy (distributed/group.py). Called
    from `finally`: while an exception is on its way out, no barrier."""
    if group is None:
        return
    if learner is not None:
        learner.gradient = learner.opt = learner.preds = learner.loss = None
    del learner
    group.close(clean=sys.exc_info()[0] is None)


def _opt_kwargs(cfg: TrainConfig) -> dict:
    kw: dict = {}
    if cfg.weight_decay:
        kw["weight_decay"] = cfg.weight_decay
    if cfg.momentum:
        kw["momentum"] = cfg.momentum
    return kw


def finish_train(
    cfg: TrainConfig,
    learner: Learner,
    result: FitResult,
    td: TrainData,
    run: RunDir,
    console: Console,
    finishing: Finishing,
) -> TrainResult:
    """Evaluate the kept parameters, write the run directory (model, metrics and summary
    first, then the plots), print the summary."""
    model, data, labels = learner.model, td.data, td.data.labels
    scores = scores_of(model, td.valid_x)
    k = len(labels)
    if len(td.valid_x):
        cm = confusion_matrix(scores, data.valid_y, k)
        accuracy = float(cm.diag().sum()) / len(td.valid_x)
        per_class = dict(zip(labels, per_class_accuracy(cm).tolist(), strict=True))
    else:
        cm, accuracy, per_class = torch.zeros(k, k, dtype=torch.long), None, {}
    # the nearest mean image on the same images: what learning the weights bought
    baseline = baseline_accuracy(
        data.train_x, data.train_y, td.valid_x, data.valid_y, k, cfg.distance
    )
    for name in ("model.safetensors", "model.json"):
        run.file(name)  # recorded as the run's before they are written
    save_model(model, run.path, labels=labels, preprocessing=td.pre.to_dict(), loss=td.loss)
    run.write_metrics(result.history)
    summary = {
        "source": data.source,
        "split": data.split,
        "labels": labels,
        "model": model.kind,
        "loss": td.loss,
        "optimizer": cfg.optimizer,
        "lr": cfg.lr,
        "lr_found": cfg.lr_found,
        "schedule": cfg.schedule,
        "stopped": result.stopped,
        "message": result.message,
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "valid_accuracy": accuracy,
        "per_class_accuracy": per_class,
        "baseline": {"model": "mean", "distance": cfg.distance, "valid_accuracy": baseline},
        "confusion": cm.tolist(),
        "seconds": result.seconds,
        "history": result.history.to_records(),
        "run_dir": str(run),
        "plots": [],
    }
    write_summary(run, summary, cfg.json)  # a complete run before any plot is drawn
    plots = finishing.draw(
        lambda: (
            _train_plots(run, model, data, td.valid_x, scores, cm, labels, result, td.loss)
            + schedule_plots(learner, run)
        )
    )
    if plots:
        summary["plots"] = [str(p) for p in plots]
        write_summary(run, summary, cfg.json)
    write_run_report(
        run.path, run.file("report.html"), run.own_plots()
    )  # from the files just written
    acc_text = "n/a (no validation set)" if accuracy is None else f"{accuracy:.4f}"
    best = f", best epoch {result.best_epoch}" if result.best_epoch else ""
    console.print(
        f"\n[bold]Summary[/]: valid_accuracy {acc_text} ({len(td.valid_x)} images{best}); "
        f"stopped: {result.stopped} after {result.epochs} epochs, {result.seconds:.1f} s"
    )
    if per_class:
        console.print(
            "  per class: " + ", ".join(f"{lab} {acc:.3f}" for lab, acc in per_class.items())
        )
    if line := baseline_line(accuracy, baseline, cfg.distance):
        console.print(line)
    console.print(f"  run: {run}/ {run.listing()}")
    if made := run.plot_listing(plots):
        console.print(f"  plots: {run.plots}/ {made}")
    console.print(f"  predict: descent predict {run} IMAGE.png ...")
    if finishing.signal is not None:
        console.print(finishing.note())
    return TrainResult(
        result, accuracy, per_class, cm.tolist(), labels, run, model, summary, finishing.signal
    )


def _train_plots(run, model, data, valid_x, scores, cm, labels, result, loss) -> list[Path]:
    size = data.size
    weights = model.class_weights()
    if model.kind == "pixels" and weights.shape[0] == 1:
        titles = [f"{labels[1]} (red) vs {labels[0]} (blue)"]
        suptitle = "per-pixel weights"
    elif model.kind == "pixels":
        titles, suptitle = [f"class {lab}" for lab in labels], "per-pixel weights of each class"
    else:
        weights = weights[:20]
        titles = [f"hidden unit {i}" for i in range(len(weights))]
        suptitle = "what the first hidden units look at"
    figs = {
        "weights.png": plot_weight_images(weights, size, titles, suptitle),
        "loss.png": plot_losses(result.history, title=f"loss ({loss})"),
    }
    if len(valid_x):
        figs["accuracy.png"] = plot_metric(result.history, "valid_accuracy", "validation accuracy")
        figs["confusion.png"] = plot_confusion(cm, labels)
        figs["mistakes.png"] = _mistakes_figure(scores, data.valid_y, data.valid_x, labels)
    return [save_figure(fig, run.plot(name)) for name, fig in figs.items()]


def _mistakes_figure(scores, targets, images, labels, n: int = 12):
    """The validation images with the lowest probability on their true class."""
    probs = class_probabilities(scores)  # (m, k)
    true_p = probs[torch.arange(len(targets)), targets]
    wrong = (predicted_class(scores) != targets).nonzero().reshape(-1)
    order = wrong[true_p[wrong].argsort()][:n]
    pred = predicted_class(scores)
    titles = [
        f"true {labels[int(targets[i])]}, said {labels[int(pred[i])]} "
        f"({float(probs[i, pred[i]]):.2f})"
        for i in order
    ]
    what = {0: "no validation image was wrong", 1: "the validation image it got wrong"}
    return plot_image_grid(
        images[order], titles, what.get(len(order), "validation images it got most wrong")
    )
