"""The hot path of fit_many (many.py): the groups' rows padded into (M, G) arrays,
residuals and Jacobian columns of every group from one backward pass, their p x p
moments, and the vectorised Levenberg-Marquardt loop.

Layout: the group is the last dimension everywhere. Row m of group g sits at [m, g] of
every (M, G) array (M: the longest group), with weight w = 1/sigma on real rows and 0
on padding, so padded rows add nothing to any sum; every per-group sum is a reduction
over dim 0, which torch vectorises across groups (several times faster than summing
each group's M contiguous rows). Parameters are (p, G), J^T J (p, p, G), J^T r (p, G):
entry (i, j) of every group's matrix is one contiguous (G,) vector, and the p x p
algebra (small_linalg.py) is a few dozen vector operations per step.

Parameter i of the k groups being evaluated is a (k,) tensor expanded to (M, k) with
stride 0 along M: every row gets its own "copy" of its group's parameters, as in
levenberg.Residuals, without copying anything, and one backward pass gives every
Jacobian column, (M, k) each. The backward pass starts from sum(r), whose gradient is
a single 1 expanded to (M, k): a column handed back still expanded (stride 0: a
parameter that is only added, such as an offset c) is known to be all ones, and its
moments are sums (or M) instead of products. (Passing a ones tensor as grad_outputs
instead would make torch import sympy on the first call: a second of start-up.)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch

from descent.core.events import CancelFit
from descent.fitting.levenberg import EPS
from descent.fitting.small_linalg import inverse_diagonal, largest_eigenvalue, spd_solve

RUNNING, CONVERGED, NO_PROGRESS, MAX_STEPS, FAILED, INTERRUPTED = range(6)
STOPPED = ("running", "converged", "no_progress", "max_steps", "failed", "interrupted")


class Padded:
    """The rows of G groups padded to (M, G), and r, J for every group at once.

    `evaluate(columns, rows)` is the model: d input columns and p parameter rows, all
    broadcastable to (M, k), giving (M, k) predictions (Formula.evaluate, or a plain
    elementwise f(x, params) wrapped by `flat`)."""

    def __init__(self, evaluate: Callable, x, y, groups, n_groups, sigma) -> None:
        self.evaluate = evaluate
        n_rows, dev = len(y), y.device
        self.n = torch.bincount(groups, minlength=n_groups)  # (G,)
        self.m = m = int(self.n.max())
        xs = x.reshape(n_rows, -1).to(torch.float64)  # (N, d)
        y = y.to(torch.float64)
        ordered = bool((groups[1:] >= groups[:-1]).all())
        if ordered and m * n_groups == n_rows:  # rows already by group, all of one length
            self.columns = tuple(c.reshape(n_groups, m).T.contiguous() for c in xs.unbind(1))
            self.y = y.reshape(n_groups, m).T.contiguous()
            w = torch.ones_like(y) if sigma is None else 1.0 / sigma
            self.w = w.reshape(n_groups, m).T.contiguous()
        else:
            order = torch.arange(n_rows, device=dev)
            if not ordered:
                order = torch.argsort(groups, stable=True)
            g_sorted = groups[order]
            first = torch.cumsum(self.n, 0) - self.n  # each group's first sorted row
            pos = torch.arange(n_rows, device=dev) - first[g_sorted]  # row within group
            flat_at = pos * n_groups + g_sorted  # where each sorted row goes in (M * G)
            lead = order[first.clamp(max=n_rows - 1)]  # a real row of each group, to pad
            pad_x = xs[lead].repeat(m, 1)  # (M * G, d): finite wherever there are data
            pad_x[flat_at] = xs[order]
            self.columns = tuple(
                pad_x[:, j].reshape(m, n_groups).contiguous() for j in range(xs.shape[1])
            )  # d of (M, G)
            self.y = torch.zeros(m * n_groups, dtype=torch.float64, device=dev)
            self.y[flat_at] = y[order]
            self.y = self.y.reshape(m, n_groups)  # (M, G)
            w = torch.zeros(m * n_groups, dtype=torch.float64, device=dev)
            w[flat_at] = 1.0 if sigma is None else 1.0 / sigma[order]
            self.w = w.reshape(m, n_groups)  # (M, G): 1/sigma on real rows, 0 on padding
        self.unit_weights = sigma is None and bool((self.n == m).all())
        # A reused buffer (M * G): a fresh multi-megabyte tensor every trial costs page
        # faults, not just arithmetic.
        self._product = torch.empty(m * n_groups, dtype=torch.float64, device=dev)

    def select(self, idx: torch.Tensor) -> Padded:
        """The groups `idx` (k,) alone (their columns gathered once; buffers shared)."""
        sub = copy.copy(self)
        sub.columns = tuple(c.index_select(1, idx) for c in self.columns)
        sub.y, sub.w = self.y.index_select(1, idx), self.w.index_select(1, idx)
        sub.n = self.n.index_select(0, idx)
        return sub

    def residuals_and_jacobian(self, b: torch.Tensor):
        """(r (M, k), J's p columns (M, k) each, unit (p,) bools: the column is all
        ones) for this object's k groups at parameters b (p, k)."""
        (p, k), m = b.shape, self.m
        with torch.enable_grad():
            # each row a leaf of its own, a stride-0 view: no copies, and the backward
            # pass stops at the (M, k) columns (no sums back to (k,))
            rows = [b[i].detach().expand(m, k).requires_grad_(True) for i in range(p)]
            r = torch.broadcast_to(self.evaluate(self.columns, rows), (m, k)) - self.y
            if not self.unit_weights:  # 1/sigma on real rows, 0 on padding
                r = r * self.w
            grads = [None] * p
            if r.requires_grad:  # d(sum r)/dr: ones expanded from one number, no buffer
                grads = torch.autograd.grad(r.sum(), rows, allow_unused=True)
        unit = [g is not None and g.stride() == (0, 0) for g in grads]
        cols = [torch.zeros_like(r) if g is None else g for g in grads]
        return r.detach(), cols, unit

    def moments(self, r: torch.Tensor, cols: list[torch.Tensor], unit: list[bool]):
        """(|r|^2 / 2 (k,), J^T J (p, p, k), J^T r (p, k)) from r (M, k) and J's p
        columns: each distinct product is one multiplication into a reused buffer and
        one sum over dim 0; an all-ones column makes it a plain sum."""
        p, (m, k) = len(cols), r.shape
        buf = self._product[: m * k].view(m, k)

        def dot(a: torch.Tensor, a_unit: bool, c: torch.Tensor, c_unit: bool) -> torch.Tensor:
            if a_unit and c_unit:
                return torch.full((k,), float(m), dtype=r.dtype, device=r.device)
            if a_unit or c_unit:
                return (c if a_unit else a).sum(0)
            return torch.mul(a, c, out=buf).sum(0)

        jtj = torch.empty(p, p, k, dtype=r.dtype, device=r.device)
        for i in range(p):
            for j in range(i, p):
                jtj[i, j] = dot(cols[i], unit[i], cols[j], unit[j])
                if j != i:
                    jtj[j, i] = jtj[i, j]
        jtr = torch.stack([dot(c, u, r, False) for c, u in zip(cols, unit, strict=True)])
        return 0.5 * dot(r, False, r, False), jtj, jtr


def flat(f: Callable) -> Callable:
    """A plain elementwise f(x, params) (x (n,) or (n, d), params p tensors of (n,)) as
    Padded's evaluate: the (M, k) arrays are flattened for it (copies: the fast path is
    Formula.evaluate)."""

    def evaluate(columns, rows):
        shape = torch.broadcast_shapes(*(t.shape for t in (*columns, *rows)))  # (M, k)
        if len(columns) == 1:
            x = columns[0].expand(shape).reshape(-1)  # (M * k,)
        else:
            x = torch.stack([c.expand(shape) for c in columns], -1).reshape(-1, len(columns))
        out = f(x, [r.expand(shape).reshape(-1) for r in rows])
        return out.reshape(shape)

    return evaluate


def levenberg_marquardt(
    data: Padded, b, start, tau, shrink, tol, max_steps, max_trials, box=None, on_step=None
):
    """Levenberg-Marquardt for every group of `data` (k groups) from b (p, k), all at
    once; `start` = data.moments at b. Returns (b (p, k), status (k,), steps (k,),
    |r|^2 / 2 (k,), J^T J (p, p, k), message) at the end.

    `box` = (lower, upper), (p, 1) each (+-inf where open), keeps every group inside
    by LevenbergMarquardt's projected, active-set step: at each new point a parameter
    on a bound that g = J^T r pushes outwards is held (its row and column of the
    scaled Gram matrix and its entry of g are zeroed, so the step and the offset are
    those of the free columns alone); the trial point is clipped into the box and the
    gain ratio uses the clipped step s, predicted = -(s . J^T r) - s^T J^T J s / 2.

    `on_step(snapshot)` is called once per iteration, before the trial step;
    `snapshot()` gives (b (p, k), |r|^2 / 2 (k,), status (k,)) now. When it raises
    CancelFit, every group still running ends "interrupted" at its current point and
    `message` is the exception's message ("" otherwise).

    Only p x p summaries of each group's Jacobian are kept (J^T J and J^T r at its
    current point). New points are processed for every group and kept where fresh, so
    no step gathers or scatters a subset. A group that stops is written to the outputs
    at once and masked (`alive`); the stopped groups are dropped from every state
    tensor and from the data (one gather each) once they are a quarter of those still
    carried, so the tail of slow groups does not pay for the finished ones."""
    p, k = b.shape
    dev, f64, i64 = b.device, torch.float64, torch.int64
    out_b, out_hs, out_jtj = b.clone(), start[0].clone(), start[1].clone()
    out_status = torch.full((k,), RUNNING, dtype=i64, device=dev)
    out_steps = torch.zeros(k, dtype=i64, device=dev)
    if k == 0:  # no group to fit (retire() would never find the last one stopped)
        return out_b, out_status, out_steps, out_hs, out_jtj, ""
    s = {  # the carried groups' state; group i (last dim) is the outputs' pos[i]
        "pos": torch.arange(k, device=dev),
        "alive": torch.ones(k, dtype=torch.bool, device=dev),  # not stopped yet
        "b": b.clone(),
        "hs": start[0].clone(),  # |r|^2 / 2
        "jtj": start[1].clone(),
        "jtr": start[2].clone(),
        "d": torch.zeros(p, k, dtype=f64, device=dev),  # running column scale D
        "gram": torch.zeros(p, p, k, dtype=f64, device=dev),  # A^T A, A = J D^-1
        "ga": torch.zeros(p, k, dtype=f64, device=dev),  # A^T r
        "lam": torch.zeros(k, dtype=f64, device=dev),
        "nu": torch.full((k,), 2.0, dtype=f64, device=dev),
        "steps": torch.zeros(k, dtype=i64, device=dev),
        "trials": torch.zeros(k, dtype=i64, device=dev),  # failed trials in a row
        "stalls": torch.zeros(k, dtype=i64, device=dev),  # accepted steps gaining ~0
        "dof": (data.n - p).clamp(min=1).to(f64),
        "fresh": torch.ones(k, dtype=torch.bool, device=dev),  # at a new point
        "held": torch.zeros(p, k, dtype=torch.bool, device=dev),  # on a bound, pushed out
    }
    carried = [k]  # groups in the state tensors; alive ones among them: counted below

    def retire(code: torch.Tensor) -> Padded | None:
        """Write out the groups whose code is not RUNNING and mask them; compact when
        enough have stopped. The carried groups' data, or None when none is alive."""
        nonlocal s
        stop = (code != RUNNING) & s["alive"]
        sel = stop.nonzero().flatten()
        if len(sel) == 0:
            return data
        at = s["pos"][sel]
        out_b[:, at], out_hs[at] = s["b"][:, sel], s["hs"][sel]
        out_jtj[:, :, at] = s["jtj"][:, :, sel]
        out_status[at], out_steps[at] = code[sel], s["steps"][sel]
        s["alive"] = s["alive"] & ~stop
        keep = s["alive"].nonzero().flatten()
        if len(keep) == 0:
            return None
        if 4 * (carried[0] - len(keep)) < carried[0]:
            return data
        carried[0] = len(keep)
        s = {name: t.index_select(-1, keep) for name, t in s.items()}
        return data.select(keep)

    def snapshot():
        """(b, |r|^2 / 2, status) of the k groups now: stopped ones from the outputs."""
        b_now, hs_now, st_now = out_b.clone(), out_hs.clone(), out_status.clone()
        live = s["alive"].nonzero().flatten()
        at = s["pos"][live]
        b_now[:, at], hs_now[at] = s["b"][:, live], s["hs"][live]
        return b_now, hs_now, st_now

    first, message = True, ""
    while True:
        # 1. New points (the start, or accepted steps): scale, decompose, test.
        fresh, jtj = s["fresh"], s["jtj"]
        d = torch.maximum(_diagonal(jtj).sqrt(), s["d"])  # (p, k)
        d = torch.where(d == 0, 1.0, d)
        gram = jtj / (d.unsqueeze(1) * d.unsqueeze(0))
        ga = s["jtr"] / d
        if box is not None:  # the active set at new points; kept while trials fail
            g = s["jtr"]
            pushed = ((s["b"] <= box[0]) & (g > 0)) | ((s["b"] >= box[1]) & (g < 0))
            s["held"] = torch.where(fresh, pushed, s["held"])
            gram, ga = _free_part(gram, ga, s["held"])
        offset2 = offset_squared(data, s["b"], fresh & s["alive"], gram, ga, d, s["held"])
        conv = offset2 <= tol * tol * 2 * s["hs"] / s["dof"]
        limit = s["steps"] >= max_steps  # the step limit, as the Learner's epochs
        code = torch.where(limit, MAX_STEPS, torch.where(conv, CONVERGED, RUNNING))
        code = torch.where(fresh, code, RUNNING)
        s["steps"] = s["steps"] + (fresh & ~limit).long()
        if first:  # lam = tau s_max^2 at each group's first point (its free columns)
            free = ~s["held"]
            s["lam"] = tau * largest_eigenvalue(gram * (free.unsqueeze(1) & free.unsqueeze(0)))
            first = False
        s["d"] = torch.where(fresh, d, s["d"])
        s["gram"] = torch.where(fresh, gram, s["gram"])
        s["ga"] = torch.where(fresh, ga, s["ga"])
        s["trials"] = torch.where(fresh, 0, s["trials"])
        data = retire(code)
        if data is None:
            break
        if on_step is not None:
            try:
                on_step(snapshot)
            except CancelFit as stop:  # the running groups end where they are
                message = stop.message
                retire(torch.full_like(code, INTERRUPTED))
                break
        # 2. One trial step for every carried group (stopped ones accept nothing).
        lam, nu, ga, hs_old = s["lam"], s["nu"], s["ga"], s["hs"]
        damped = s["gram"].clone()
        if box is not None:  # held rows and columns: zero, then lam on the diagonal
            held = s["held"]
            damped[held.unsqueeze(1) | held.unsqueeze(0)] = 0.0
        _diagonal(damped).add_(lam)
        z = spd_solve(damped, ga)[0]  # (p, k); 0 for a held parameter
        if box is None:
            predicted = 0.5 * ((z * ga).sum(0) + lam * z.pow(2).sum(0))
            trial = s["b"] - z / s["d"]
        else:  # the clipped step and the decrease the linear model predicts for it
            step = torch.minimum(torch.maximum(s["b"] - z / s["d"], box[0]), box[1]) - s["b"]
            jtj_step = (s["jtj"] * step.unsqueeze(0)).sum(1)  # (p, k): J^T J s
            predicted = -(step * s["jtr"]).sum(0) - 0.5 * (step * jtj_step).sum(0)
            trial = s["b"] + step
        hs_new, jtj_new, jtr_new = data.moments(*data.residuals_and_jacobian(trial))
        ok = torch.isfinite(hs_new) & (predicted > 0) & torch.isfinite(predicted)
        rho = torch.where(ok, (hs_old - hs_new) / predicted, -1.0)
        # accept where rho > 0 and the Jacobian is finite (so are its squared column norms)
        acc = (rho > 0) & torch.isfinite(_diagonal(jtj_new)).all(0) & s["alive"]
        gain = torch.clamp(1 - (2 * rho - 1) ** 3, min=shrink)
        small = (hs_old - hs_new) <= 4 * EPS * hs_old
        stalls = torch.where(acc, torch.where(small, s["stalls"] + 1, 0), s["stalls"])
        trials = s["trials"] + (~acc).long()
        s.update(
            b=torch.where(acc, trial, s["b"]),
            jtj=torch.where(acc, jtj_new, s["jtj"]),
            jtr=torch.where(acc, jtr_new, s["jtr"]),
            hs=torch.where(acc, hs_new, hs_old),
            lam=torch.where(acc, lam * gain, lam * nu),
            nu=torch.where(acc, 2.0, nu * 2),
            stalls=stalls,
            trials=trials,
            fresh=acc,
        )
        done = (acc & (stalls >= 3)) | (~acc & (trials >= max_trials))
        data = retire(torch.where(done, NO_PROGRESS, RUNNING))
        if data is None:
            break
    return out_b, out_status, out_steps, out_hs, out_jtj, message


def _free_part(gram, ga, held):
    """The scaled Gram matrix and gradient of the free columns: a held parameter's
    row and column become those of the identity and its gradient entry 0, so every
    solve leaves it where it is and the offset counts the free columns alone."""
    if not bool(held.any()):
        return gram, ga
    gram = gram.clone()
    gram[held.unsqueeze(1) | held.unsqueeze(0)] = 0.0
    _diagonal(gram)[held] = 1.0
    return gram, torch.where(held, 0.0, ga)


def _diagonal(a: torch.Tensor) -> torch.Tensor:
    """The diagonals of (p, p, k) matrices as a (p, k) view."""
    return a.diagonal(dim1=0, dim2=1).T


def offset_squared(data: Padded, b, fresh, gram, ga, d, held=None):
    """|U^T r|^2 = g^T (A^T A)^-1 g, (k,); by SVD of A where A^T A is singular at a
    fresh point (a rank-deficient point: r is projected on A's column space). Held
    parameters' columns (held (p, k)) are left out of A."""
    _, ok, half = spd_solve(gram, ga, back=False)  # |c|^2 = |L^-1 g|^2, L L^T = A^T A
    out = half.pow(2).sum(0)
    singular = ((~ok | ~torch.isfinite(out)) & fresh).nonzero().flatten()
    if len(singular):
        r, cols, _ = data.select(singular).residuals_and_jacobian(b[:, singular])  # (M, ks)
        a = torch.stack(cols, -1).transpose(0, 1) / d[:, singular].T.unsqueeze(1)  # (ks, M, p)
        if held is not None:
            a = a * (~held[:, singular]).T.unsqueeze(1).to(a.dtype)
        u, sv, _ = torch.linalg.svd(a, full_matrices=False)
        c = (u.mT @ r.T.unsqueeze(-1)).squeeze(-1)
        c = torch.where(sv > sv[:, :1] * EPS * max(a.shape[1:]), c, torch.zeros_like(c))
        out[singular] = c.pow(2).sum(-1)
    return out


def standard_errors(jtj, rss, n, absolute_sigma):
    """sqrt(diag(cov)), (p, G): cov = (J^T J)^-1 (jtj (p, p, G)), times rss / (n - p)
    unless absolute_sigma, from the Cholesky factor of the column-scaled J^T J; NaN
    where that is not positive definite (rank deficient), n <= p, or the group failed."""
    p = jtj.shape[0]
    d = _diagonal(jtj).sqrt()  # (p, G) column norms
    d = torch.where(d == 0, torch.ones_like(d), d)
    inv, ok = inverse_diagonal(jtj / (d.unsqueeze(1) * d.unsqueeze(0)))
    var = inv / (d * d)
    dof = n - p
    if not absolute_sigma:
        var = var * (rss / dof.clamp(min=1))
    bad = ~ok | (dof < 0 if absolute_sigma else dof <= 0) | ~torch.isfinite(rss)
    return torch.where(bad, torch.full_like(var, math.nan), var.sqrt())
