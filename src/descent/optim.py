"""[5 step] Optimizers by name, from torch.optim.

    make_optimizer("sgd", model.parameters(), lr=0.1, momentum=0.9, nesterov=True)

Plain SGD's update is the book's `p -= lr * p.grad`; with momentum mu it is
torch's `v = mu * v + g; p -= lr * v` (nesterov: `p -= lr * (g + mu * v)`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from descent.errors import ConfigError

# name -> (class, the keyword arguments a user may set)
OPTIMIZERS: dict[str, tuple[type[torch.optim.Optimizer], set[str]]] = {
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
    `name(params, lr=lr, **kwargs)` when `name` is a callable."""
    if not (lr > 0 and lr < float("inf")):
        raise ConfigError(f"--lr must be a positive number, got {lr}")
    if callable(name):
        return name(params, lr=lr, **kwargs)
    key = name.lower()
    if key not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}: choose one of {', '.join(OPTIMIZERS)}")
    cls, allowed = OPTIMIZERS[key]
    unknown = set(kwargs) - allowed
    if unknown:
        raise ConfigError(
            f"optimizer {key!r} takes no option {', '.join(sorted(unknown))}; "
            f"it takes {', '.join(sorted(allowed))}"
        )
    if kwargs.get("nesterov") and not kwargs.get("momentum"):
        raise ConfigError("--nesterov needs --momentum above 0 (e.g. --momentum 0.9)")
    return cls(params, lr=lr, **kwargs)


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
