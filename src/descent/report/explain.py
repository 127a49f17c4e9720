"""`descent explain`: the seven-step loop as text, with the callbacks on each event."""

from __future__ import annotations

import re
from typing import Any

# The loop as core/learner.py runs it, event for event: "@event" lines show the
# callbacks attached there (tests/test_explain.py runs a fit and compares the order
# in which the events fire with the order of the @ lines).
LOOP = """\
[1 init]     model = {model}
fit(epochs):                                         [6 repeat]
  @before_fit
  for epoch in range(epochs):
    @before_epoch
    train:
      @before_train
      for xb, yb in {train}:
        @before_batch
        preds = model(xb)                            [2 predict]
        @after_pred
        loss = {loss}(preds, yb)                     [3 loss]
        @after_loss
        {backward}                              [4 gradient] {gradient}
        @after_backward
        opt.step(); opt.zero_grad()                  [5 step]   {opt}
        @after_step
        @after_batch
      @after_train
    validate, with torch.no_grad():
      @before_validate
      for xb, yb in {valid}:
        @before_batch
        preds = model(xb)
        @after_pred
        loss = {loss}(preds, yb); metrics: {metrics}
        @after_loss
        @after_batch
      @after_validate
    record = epoch, train_loss, valid_loss, metrics, time
    @after_epoch                                     [7 stop] rules raise CancelFit
  @after_fit"""


def loop_events() -> list[str]:
    """The events in the order LOOP shows them (each loop body once)."""
    return [line.strip()[1:].split()[0] for line in LOOP.splitlines() if line.strip()[:1] == "@"]


_TAGGED = re.compile(r"^(.*?)\s{2,}(\[\d .*)$")


def explain(learner: Any) -> str:
    """The seven-step loop as text, with the callbacks attached to each event and a
    line per callback saying what it does."""
    opt = learner.opt
    group = {k: v for k, v in opt.param_groups[0].items() if k != "params"}
    keep = ("lr", "momentum", "nesterov", "weight_decay", "betas", "max_iter", "line_search_fn")
    opt_text = (
        f"{type(opt).__name__}("
        + ", ".join(
            f"{k}={group[k]}" for k in keep if k in group and group[k] not in (0, False, None)
        )
        + ")"
    )
    text = LOOP.format(
        model=repr(learner.model).replace("\n", "\n" + " " * 21),
        train=learner.train_batches,
        valid=learner.valid_batches if learner.valid_batches is not None else "(no validation set)",
        loss=getattr(learner.loss_func, "__name__", type(learner.loss_func).__name__),
        opt=opt_text,
        metrics=", ".join(m.name for m in learner.metrics) or "none",
        backward=learner.gradient.code,
        gradient=learner.gradient.describe(),
    )
    lines = []
    for line in text.splitlines():
        match = _TAGGED.match(line)
        code, tag = (match[1], match[2]) if match else (line, "")
        if code.strip().startswith("@"):
            event = code.strip()[1:]
            indent = code[: len(code) - len(code.lstrip())]
            names = [cb.name for cb in learner.callbacks if event in cb.handled_events()]
            if not names and not tag:
                continue
            code = f"{indent}{event}: {', '.join(names) or '-'}"
        lines.append(f"{code:<52} {tag}".rstrip() if tag else code)
    lines.append("")
    why = getattr(learner.gradient, "why", "")
    lines.append(f"gradient: {learner.gradient.describe()}" + (f", because {why}" if why else ""))
    lines.append("")
    lines.append("callbacks:")
    for cb in learner.callbacks:
        lines.append(f"  {cb.name:<18} {cb.describe()}")
    return "\n".join(lines)
