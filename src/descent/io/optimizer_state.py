"""A checkpoint's optimizer state, checked against the optimizer it is loaded into:
torch.optim trusts its state_dict, so a state of other types or shapes (a checkpoint
edited by hand, its hash forged) would fail in the middle of training instead of at load.

    check_optimizer_state(state["optimizer"], learner.opt, path)   # or a CheckpointError
"""

from __future__ import annotations

from pathlib import Path

import torch

from descent.errors import CheckpointError

# Per-parameter optimizer state (SGD, Adam, AdamW, LBFGS, Levenberg-Marquardt): the slots
# that are tensors of their parameter's shape, tensors of all parameters flattened, lists
# of tensors; every other slot is a number (or a 0-d tensor).
_PER_PARAMETER = ("momentum_buffer", "exp_avg", "exp_avg_sq", "max_exp_avg_sq", "D")
_FLAT = ("d", "prev_flat_grad")
_LISTS = ("old_dirs", "old_stps", "ro", "al")


def check_optimizer_state(saved: dict, opt: torch.optim.Optimizer, path: Path) -> None:
    """CheckpointError unless `saved` is the state of an optimizer like `opt`: one group
    per group, each with the keys' types of `opt`'s own groups, and per-parameter state of
    the shapes and types that optimizer writes."""
    fresh = opt.param_groups
    groups = saved["param_groups"]
    if len(groups) != len(fresh):
        raise CheckpointError(f"{path}: {len(groups)} optimizer groups; this run has {len(fresh)}")
    for i, (group, mine) in enumerate(zip(groups, fresh, strict=True)):
        for key, value in group.items():
            ref = mine.get(key, 0.0)
            kind = type(ref) if isinstance(ref, (bool, str)) or ref is None else None
            ok = (
                type(value) is kind if kind is not None
                else isinstance(value, (int, float)) and not isinstance(value, bool)
                if isinstance(ref, (int, float))
                else isinstance(value, (list, tuple)) and len(value) == len(ref)
            )  # fmt: skip
            if key != "params" and not ok:
                raise CheckpointError(
                    f"{path}: field 'state.optimizer.param_groups.{i}.{key}' is {value!r:.40}, "
                    f"of another type than this optimizer's {ref!r:.40}"
                )
    params = [p for group in fresh for p in group["params"]]
    total = sum(p.numel() for p in params)
    for key, slots in saved["state"].items():
        if not (type(key) is int and 0 <= key < len(params) and isinstance(slots, dict)):
            raise CheckpointError(f"{path}: optimizer state for an unknown parameter {key!r:.20}")
        for slot, value in slots.items():
            if slot in _PER_PARAMETER:
                ok = value is None or _tensor_of(value, params[key].shape)
            elif slot in _FLAT:
                ok = _tensor_of(value, (total,))
            elif slot in _LISTS:  # L-BFGS history: directions, steps, 1/(y.s), alphas
                shape = (total,) if slot in ("old_dirs", "old_stps") else None
                ok = isinstance(value, list) and all(
                    (t is None and slot == "al") or _tensor_of(t, shape) for t in value
                )
            else:  # step, t, n_iter, func_evals, H_diag, prev_loss, ...
                ok = (
                    isinstance(value, (int, float))
                    and not isinstance(value, bool)
                    or (isinstance(value, torch.Tensor) and value.numel() == 1)
                )
            if not ok:
                raise CheckpointError(
                    f"{path}: optimizer state {slot!r:.30} of parameter {key} is not what this "
                    f"optimizer writes (a {type(value).__name__})"
                )
        _check_slots(slots, opt, key, path)


# The slot sets a parameter's state has after one step or more, per optimizer class (a
# forged state with slots missing would fail inside the optimizer's step). L-BFGS and
# Levenberg-Marquardt keep a shorter state when their first step ends at once.
_LBFGS = {"func_evals", "n_iter", "d", "t", "old_dirs", "old_stps", "ro", "H_diag",
          "prev_flat_grad", "prev_loss"}  # fmt: skip
_ADAM = {"step", "exp_avg", "exp_avg_sq"}
_SLOT_SETS: dict[str, list[set[str]]] = {
    "SGD": [{"momentum_buffer"}],
    "PlainSGD": [{"momentum_buffer"}],
    "Adam": [_ADAM, _ADAM | {"max_exp_avg_sq"}],
    "AdamW": [_ADAM, _ADAM | {"max_exp_avg_sq"}],
    "LBFGS": [{"func_evals", "n_iter"}, _LBFGS, _LBFGS | {"al"}],
    "LevenbergMarquardt": [{"D"}, {"D", "lam", "nu", "stalls"}],
}


def _check_slots(slots: dict, opt: torch.optim.Optimizer, key: int, path: Path) -> None:
    """The slots of one parameter's state: a set this optimizer writes, and L-BFGS's
    history lists of one length, at most history_size (its alphas: history_size)."""
    allowed = _SLOT_SETS.get(type(opt).__name__)
    if allowed is not None and slots and set(slots) not in allowed:
        raise CheckpointError(
            f"{path}: optimizer state of parameter {key} has slots {sorted(slots)}, which "
            f"{type(opt).__name__} does not write"
        )
    if "old_dirs" in slots:
        n, size = len(slots["old_dirs"]), opt.param_groups[0].get("history_size", 0)
        long_enough = len(slots.get("al", [None] * size)) == size and n <= size
        if len(slots["old_stps"]) != n or len(slots["ro"]) != n or not long_enough:
            raise CheckpointError(
                f"{path}: L-BFGS history lists of other lengths than its history_size {size}"
            )


def _tensor_of(value: object, shape: tuple | None) -> bool:
    """A float tensor of `shape`, or (shape None) of one element."""
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        return False
    return value.numel() == 1 if shape is None else tuple(value.shape) == tuple(shape)
