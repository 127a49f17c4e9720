"""[5 step] Optimizers by name, from torch.optim.

    make_optimizer("sgd", model.parameters(), lr=0.1, momentum=0.9, nesterov=True)

Plain SGD's update is the book's `p -= lr * p.grad` (PlainSGD); with momentum mu it is
torch's `v = mu * v + g; p -= lr * v` (nesterov: `p -= lr * (g + mu * v)`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import MethodType

import torch

from descent.errors import ConfigError
from descent.options import OPTIMIZERS, check_choice, check_lr


class PlainSGD(torch.optim.SGD):
    """The book's update and nothing else: `p -= lr * p.grad` for every parameter.

    make_optimizer("sgd") returns it when no option (momentum, weight decay,
    nesterov, dampening) asks for torch.optim.SGD's general step. Its parameter
    groups and state_dict are SGD's; its step is the same arithmetic as SGD's at
    momentum 0 (tests/test_fast_step.py compares them over many steps), without the
    grad-mode switching, per-tensor dispatch and profiler record that cost several
    times the update itself on a 3-parameter model (bench/loop_overhead.py). Step
    hooks registered on it (register_step_pre_hook / _post_hook) switch it to
    torch's hooked, profiled step; torch's global optimizer hooks are not run."""

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"])
        return loss

    step.hooked = True  # type: ignore[attr-defined]  # torch.optim: do not wrap it

    def register_step_pre_hook(self, hook):
        self.step = MethodType(self.profile_hook_step(PlainSGD.step), self)
        return super().register_step_pre_hook(hook)

    def register_step_post_hook(self, hook):
        self.step = MethodType(self.profile_hook_step(PlainSGD.step), self)
        return super().register_step_post_hook(hook)


# name -> (class, the keyword arguments a user may set); the names are options.OPTIMIZERS
OPTIMIZER_CLASSES: dict[str, tuple[type[torch.optim.Optimizer], set[str]]] = {
    "sgd": (torch.optim.SGD, {"momentum", "nesterov", "weight_decay", "dampening"}),
    "adam": (torch.optim.Adam, {"betas", "eps", "weight_decay", "amsgrad"}),
    "adamw": (torch.optim.AdamW, {"betas", "eps", "weight_decay", "amsgrad"}),
    "lbfgs": (
        torch.optim.LBFGS,
        {
            "max_iter",
            "max_eval",
            "history_size",
            "line_search_fn",
            "tolerance_grad",
            "tolerance_change",
        },
    ),
}


def make_optimizer(
    name: str | Callable[..., torch.optim.Optimizer],
    params: Iterable[torch.nn.Parameter],
    lr: float,
    **kwargs: object,
) -> torch.optim.Optimizer:
    """A torch.optim optimizer by name ("sgd", "adam", "adamw", "lbfgs"), or
    `name(params, lr=lr, **kwargs)` when `name` is a callable. Plain "sgd" (no
    option but lr) is PlainSGD, the book's update."""
    check_lr(lr)
    if callable(name):
        return name(params, lr=lr, **kwargs)
    key = check_choice("optimizer", name.lower(), OPTIMIZERS)
    cls, allowed = OPTIMIZER_CLASSES[key]
    unknown = set(kwargs) - allowed
    if unknown:
        raise ConfigError(
            f"optimizer {key!r} takes no option {', '.join(sorted(unknown))}; "
            f"it takes {', '.join(sorted(allowed))}"
        )
    if kwargs.get("nesterov") and not kwargs.get("momentum"):
        raise ConfigError("--nesterov needs --momentum above 0 (e.g. --momentum 0.9)")
    if key == "sgd" and not any(kwargs.values()):
        cls = PlainSGD
    return cls(params, lr=lr, **kwargs)


def needs_closure(opt: torch.optim.Optimizer) -> bool:
    """Whether `opt.step` re-evaluates the loss at trial points and so must be given
    a closure (L-BFGS's line search); the others take the gradient already computed."""
    return getattr(opt, "needs_closure", isinstance(opt, torch.optim.LBFGS))


def clone_optimizer(
    opt: torch.optim.Optimizer, params: Iterable[torch.nn.Parameter]
) -> torch.optim.Optimizer:
    """An optimizer of the same class, settings and state as `opt`, over `params`
    (a copy of its model's parameters, in the same order)."""
    twin = type(opt)(list(params), **opt.defaults)
    twin.load_state_dict(opt.state_dict())
    return twin


def hessian_eigenvalues(
    model: torch.nn.Module,
    loss_func: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
) -> torch.Tensor:
    """Eigenvalues (ascending) of the loss's Hessian with respect to all parameters,
    at the current parameters. For small models (a few hundred parameters).

    Plain gradient descent on a quadratic is stable for lr < 2 / max eigenvalue and
    needs about max / min eigenvalue (the condition number) steps per digit."""
    from torch.func import functional_call

    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for _, p in model.named_parameters()])

    def loss_of(vec: torch.Tensor) -> torch.Tensor:
        params, i = {}, 0
        for name, shape in zip(names, shapes, strict=True):
            k = shape.numel()
            params[name] = vec[i : i + k].reshape(shape)
            i += k
        return loss_func(functional_call(model, params, (x,)), y)

    hess = torch.autograd.functional.hessian(loss_of, flat)  # (p, p)
    return torch.linalg.eigvalsh(hess.double())
