"""One formula fitted to many groups of rows at once (`--by COL`): one vectorised
Levenberg-Marquardt over G groups, each with its own parameters, damping and stop.

Layout: the rows of group g are padded to the longest group's M rows, with weight
w = 1/sigma on real rows and 0 on padding, so r[g, k] = w[g, k] (f(x[g, k], b_g) -
y[g, k]) is (G, M) and padded rows add nothing to any sum. J^T is (p, G, M), from
one backward pass for all groups (each row has its own copy of its group's
parameters, as in levenberg.Residuals).

Each group follows LevenbergMarquardt's rules exactly (see its docstring): with
A = J D^-1 (D: the running maximum of J's column norms) and g = A^T r,

    stop "converged"  when  |U^T r|^2 = g^T (A^T A)^-1 g <= tol^2 |r|^2 / (n - p)
    trial step        delta = -D^-1 (A^T A + lam I)^-1 g        (lam = tau s_max^2 at first)
    predicted         = (g . z + lam |z|^2) / 2,  z = (A^T A + lam I)^-1 g
    rho > 0           accept; lam *= max(shrink, 1 - (2 rho - 1)^3); nu = 2
    otherwise         lam *= nu; nu *= 2; after max_trials failures in a row: "no_progress"

These are the same quantities as the SVD formulas of levenberg.py, written with the
scaled p x p Gram matrix (as levenberg.decompose does for large n) and solved by
batched Cholesky factorisations: a group that converged or failed stops changing,
the others go on; the loop ends when none is running. Groups that stop on
"no_progress" or the step limit are refitted once with strong damping, as
fit_curve does, and the better fit is kept. Everything stays on the tensors'
device; the one host sync per iteration asks which groups still run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from descent.errors import ConfigError, DataError
from descent.fitting.levenberg import EPS
from descent.fitting.small_linalg import largest_eigenvalue, spd_solve
from descent.fitting.weights import check_sigma

RUNNING, CONVERGED, NO_PROGRESS, MAX_STEPS, FAILED = range(5)
STOPPED = ("running", "converged", "no_progress", "max_steps", "failed")


@dataclass
class ManyFits:
    """Per-group results of `fit_many`, group g in row g of every tensor."""

    names: list[str]
    params: torch.Tensor  # (G, p); NaN for a failed group
    stderr: torch.Tensor  # (G, p); NaN when not estimable
    rss: torch.Tensor  # (G,) sum of squared (weighted) residuals: chi-square with sigma
    n: torch.Tensor  # (G,) rows in each group
    steps: torch.Tensor  # (G,) Jacobians evaluated
    stopped: list[str]  # "converged", "no_progress", "max_steps" or "failed"
    reasons: list[str]  # why a group failed, else ""

    def rows(self, labels: Sequence | None = None) -> list[dict]:
        """One dict per group: group, params, stderr, rss, stopped (and reason)."""
        labels = range(len(self.stopped)) if labels is None else labels
        params, stderr, rss = self.params.tolist(), self.stderr.tolist(), self.rss.tolist()
        out = []
        for g, label in enumerate(labels):
            row = {
                "group": label,
                "params": dict(zip(self.names, params[g], strict=True)),
                "stderr": dict(zip(self.names, stderr[g], strict=True)),
                "rss": rss[g],
                "stopped": self.stopped[g],
            }
            if self.reasons[g]:
                row["reason"] = self.reasons[g]
            out.append(row)
        return out


def fit_many(
    f: Callable,
    x: torch.Tensor,
    y: torch.Tensor,
    groups: torch.Tensor,
    init: Sequence[float] | torch.Tensor,
    names: Sequence[str],
    *,
    sigma: torch.Tensor | None = None,
    absolute_sigma: bool = False,
    tol: float = 1e-6,
    max_steps: int = 10_000,
    max_trials: int = 12,
) -> ManyFits:
    """Fit y ~ f(x, b_g) separately in every group g of rows, all at once.

    x (N,) or (N, d), y (N,), groups (N,) integer codes 0..G-1 (every code a group,
    rows in any order), init (p,) for every group or (G, p). f is elementwise (every
    formula is) and takes p per-row parameter tensors. Returns ManyFits; a group with
    fewer rows than parameters, or whose start gives non-finite residuals or
    derivatives, is "failed" with its reason and the others are fitted."""
    names = list(names)
    p, n_rows = len(names), len(y)
    groups = torch.as_tensor(groups, device=y.device)
    if groups.dtype.is_floating_point or groups.shape != (n_rows,):
        raise DataError(f"groups must be {n_rows} integer codes, one per row")
    if n_rows == 0:
        raise DataError("no rows to fit")
    if sigma is not None:
        sigma = check_sigma(sigma, "sigma", n_rows).to(y.device)
    n_groups = int(groups.max()) + 1
    b0 = torch.as_tensor(init, dtype=torch.float64, device=y.device)
    if b0.shape == (p,):
        b0 = b0.expand(n_groups, p)
    if b0.shape != (n_groups, p):
        raise ConfigError(f"init must be ({p},) or ({n_groups}, {p}), got {tuple(b0.shape)}")
    b0 = b0.clone()
    data = _Padded(f, x, y, groups, n_groups, sigma)

    status = torch.full((n_groups,), RUNNING, dtype=torch.int64, device=y.device)
    reasons = [""] * n_groups
    for g in (data.n < p).nonzero().flatten().tolist():
        status[g] = FAILED
        reasons[g] = f"too few rows: {int(data.n[g])} for {p} parameters"
    r, cols = data.residuals_and_jacobian(torch.arange(n_groups, device=y.device), b0)
    bad_r = ~torch.isfinite(r)  # (G, M)
    bad = bad_r | ~torch.isfinite(torch.stack(cols)).all(0)
    for g in (bad.any(1) & (status == RUNNING)).nonzero().flatten().tolist():
        k = int(bad[g].nonzero()[0])
        what = "the residual" if bad_r[g, k] else "a derivative"
        status[g] = FAILED
        reasons[g] = f"{what} is not finite at the start, at row {k + 1} of the group"

    ok = (status == RUNNING).nonzero().flatten()
    if len(ok) < n_groups:
        r, cols = r.index_select(0, ok), [c.index_select(0, ok) for c in cols]
    start = _moments(r, cols)
    b, st, steps = b0.clone(), status.clone(), torch.zeros_like(status)
    half_ss = torch.full((n_groups,), math.nan, dtype=torch.float64, device=y.device)
    jtj = torch.full((n_groups, p, p), math.nan, dtype=torch.float64, device=y.device)
    out = _levenberg_marquardt(data, ok, b0[ok], start, 1e-4, 1 / 30, tol, max_steps, max_trials)
    b[ok], st[ok], steps[ok], half_ss[ok], jtj[ok] = out
    again = ((st == NO_PROGRESS) | (st == MAX_STEPS)).nonzero().flatten()
    if len(again):  # fit_curve's retry: strong damping, from the start; keep the better
        pos = torch.searchsorted(ok, again)  # where the retried groups sit in `start`
        start2 = [m.index_select(0, pos) for m in start]
        b2, st2, steps2, hs2, jtj2 = _levenberg_marquardt(
            data, again, b0[again], start2, 0.1, 1 / 3, tol, max_steps, max_trials
        )
        better = hs2 < half_ss[again]
        w = again[better]
        b[w], st[w], half_ss[w], jtj[w] = b2[better], st2[better], hs2[better], jtj2[better]
        steps[again] += steps2
    b[st == FAILED] = math.nan
    stderr = _standard_errors(jtj, 2 * half_ss, data.n, absolute_sigma)
    rss = 2 * half_ss
    return ManyFits(
        names=names,
        params=b,
        stderr=stderr,
        rss=rss,
        n=data.n,
        steps=steps,
        stopped=[STOPPED[s] for s in st.tolist()],
        reasons=reasons,
    )


class _Padded:
    """The rows of G groups padded to (G, M), and r, J^T for any subset of groups."""

    def __init__(self, f, x, y, groups, n_groups, sigma) -> None:
        self.f = f
        order = torch.argsort(groups, stable=True)
        g_sorted = groups[order]
        self.n = torch.bincount(groups, minlength=n_groups)  # (G,)
        self.m = int(self.n.max())
        first = torch.cumsum(self.n, 0) - self.n  # index of each group's first sorted row
        pos = torch.arange(len(y), device=y.device) - first[g_sorted]  # row within its group
        flat = g_sorted * self.m + pos  # where each sorted row goes in (G * M)
        lead = order[first.clamp(max=len(y) - 1)]  # a real row of each group, to pad with
        xs = x.reshape(len(y), -1).to(torch.float64)
        pad_x = xs[lead].repeat_interleave(self.m, 0)  # (G * M, d): finite where data are
        pad_x[flat] = xs[order]
        self.x = pad_x.reshape(n_groups, self.m, -1)  # (G, M, d)
        self.squeeze = x.dim() == 1
        self.y = torch.zeros(n_groups * self.m, dtype=torch.float64, device=y.device)
        self.y[flat] = y[order].to(torch.float64)
        self.y = self.y.reshape(n_groups, self.m)  # (G, M)
        self.w = torch.zeros_like(self.y).reshape(-1)
        self.w[flat] = 1.0 if sigma is None else 1.0 / sigma[order]
        self.w = self.w.reshape(n_groups, self.m)  # (G, M): 1/sigma on real rows, 0 on padding
        self.unit_weights = sigma is None and bool((self.n == self.m).all())

    def residuals_and_jacobian(self, idx: torch.Tensor, b: torch.Tensor):
        """r (k, M) and the p columns of J, each (k, M), for the groups `idx` (k,) at
        parameters b (k, p)."""
        k, p, m = len(idx), b.shape[1], self.m
        full = k == len(self.y)  # every group: no gathers
        x = (self.x if full else self.x.index_select(0, idx)).reshape(k * m, -1)
        y = (self.y if full else self.y.index_select(0, idx)).reshape(-1)
        x = x.squeeze(1) if self.squeeze else x
        with torch.enable_grad():
            leaf = b.detach().requires_grad_(True)
            rows = [leaf[:, i : i + 1].expand(k, m).reshape(-1) for i in range(p)]  # (k*M,)
            r = torch.broadcast_to(self.f(x, rows), (k * m,)) - y
            if not self.unit_weights:  # 1/sigma on real rows, 0 on padding
                r = r * (self.w if full else self.w.index_select(0, idx)).reshape(-1)
            if r.requires_grad:
                grads = torch.autograd.grad(r, rows, torch.ones_like(r), allow_unused=True)
            else:
                grads = [None] * p
        cols = [torch.zeros_like(r) if g is None else g for g in grads]
        return r.detach().reshape(k, m), [c.reshape(k, m) for c in cols]


def _moments(r: torch.Tensor, cols: list[torch.Tensor]):
    """(|r|^2 / 2 (k,), J^T J (k, p, p), J^T r (k, p)) from r (k, M) and J's p columns
    (k, M): the p (p + 1) / 2 distinct column products, each one pass over (k, M)."""
    p, k = len(cols), r.shape[0]
    jtj = torch.empty(k, p, p, dtype=r.dtype, device=r.device)
    for i in range(p):
        for j in range(i, p):
            jtj[:, i, j] = jtj[:, j, i] = torch.linalg.vecdot(cols[i], cols[j])
    jtr = torch.stack([torch.linalg.vecdot(c, r) for c in cols], -1)
    return 0.5 * torch.linalg.vecdot(r, r), jtj, jtr


class _Rows:
    """A subset of the k groups (sorted indices): gather and scatter state tensors,
    without copies when the subset is every group (the early iterations)."""

    def __init__(self, idx: torch.Tensor, k: int) -> None:
        self.idx, self.all = idx, len(idx) == k

    def take(self, t: torch.Tensor) -> torch.Tensor:
        return t if self.all else t.index_select(0, self.idx)

    def put(self, t: torch.Tensor, v: torch.Tensor) -> None:
        if self.all:
            t.copy_(v)
        else:
            t.index_copy_(0, self.idx, v)


def _levenberg_marquardt(data, idx, b, start, tau, shrink, tol, max_steps, max_trials):
    """Levenberg-Marquardt for the groups `idx` (k,) from b (k, p), all at once;
    `start` = _moments at b. Returns (b, status, steps, |r|^2 / 2, J^T J) at the end,
    per group. Only p x p summaries of each group's Jacobian are kept: J^T J and
    J^T r at its current point."""
    k, p = b.shape
    dev, f64, i64 = b.device, torch.float64, torch.int64
    b = b.clone()
    status = torch.full((k,), RUNNING, dtype=i64, device=dev)
    steps = torch.zeros(k, dtype=i64, device=dev)
    trials = torch.zeros(k, dtype=i64, device=dev)  # failed trials in a row
    stalls = torch.zeros(k, dtype=i64, device=dev)  # accepted steps in a row that gained ~0
    new_point = torch.ones(k, dtype=torch.bool, device=dev)
    lam = torch.full((k,), math.nan, dtype=f64, device=dev)  # NaN: not set yet
    nu = torch.full((k,), 2.0, dtype=f64, device=dev)
    dof = (data.n[idx] - p).clamp(min=1).to(f64)  # (k,)
    d = torch.zeros(k, p, dtype=f64, device=dev)  # running column scale D
    gram = torch.zeros(k, p, p, dtype=f64, device=dev)  # A^T A, A = J D^-1
    ga = torch.zeros(k, p, dtype=f64, device=dev)  # A^T r
    half_ss, jtj, jtr = (m.clone() for m in start)
    eye = torch.eye(p, dtype=f64, device=dev)
    while True:
        # 1. A new point (the start, or an accepted step): scale, decompose, test.
        fresh = (new_point & (status == RUNNING)).nonzero().flatten()
        if len(fresh):
            f = _Rows(fresh, k)
            jtj_f, steps_f = f.take(jtj), f.take(steps)
            d_f = torch.maximum(torch.diagonal(jtj_f, dim1=-2, dim2=-1).sqrt(), f.take(d))
            d_f = torch.where(d_f == 0, 1.0, d_f)
            g_f = jtj_f / (d_f.unsqueeze(-1) * d_f.unsqueeze(-2))
            ga_f = f.take(jtr) / d_f
            offset2 = _offset_squared(data, idx, b, fresh, g_f, ga_f, d_f)
            conv = offset2 <= tol * tol * 2 * f.take(half_ss) / f.take(dof)
            limit = steps_f >= max_steps  # the step limit, as the Learner's epochs
            f.put(status, torch.where(limit, MAX_STEPS, torch.where(conv, CONVERGED, RUNNING)))
            f.put(steps, steps_f + (~limit).long())
            lam_f = f.take(lam)
            first = torch.isnan(lam_f).nonzero().flatten()
            if len(first):  # lam = tau s_max^2 at a group's first point
                top = largest_eigenvalue(g_f.index_select(0, first))
                f.put(lam, lam_f.index_copy(0, first, tau * top))
            f.put(d, d_f)
            f.put(gram, g_f)
            f.put(ga, ga_f)
            f.put(new_point, torch.zeros_like(fresh, dtype=torch.bool))
            f.put(trials, torch.zeros_like(fresh))
        run = (status == RUNNING).nonzero().flatten()
        if len(run) == 0:
            return b, status, steps, half_ss, jtj
        # 2. One trial step for every running group.
        u = _Rows(run, k)
        lam_u, nu_u, ga_u, hs_old = u.take(lam), u.take(nu), u.take(ga), u.take(half_ss)
        z = spd_solve(u.take(gram) + lam_u[:, None, None] * eye, ga_u)[0]  # (ku, p)
        predicted = 0.5 * ((z * ga_u).sum(-1) + lam_u * z.pow(2).sum(-1))
        trial = u.take(b) - z / u.take(d)
        hs_new, jtj_new, jtr_new = _moments(*data.residuals_and_jacobian(idx[run], trial))
        ok = torch.isfinite(hs_new) & (predicted > 0) & torch.isfinite(predicted)
        rho = torch.where(ok, (hs_old - hs_new) / predicted, -1.0)
        # accept where rho > 0 and the Jacobian is finite (so are its squared column norms)
        acc = (rho > 0) & torch.isfinite(torch.diagonal(jtj_new, dim1=-2, dim2=-1)).all(-1)
        gain = torch.clamp(1 - (2 * rho - 1) ** 3, min=shrink)
        small = (hs_old - hs_new) <= 4 * EPS * hs_old
        stalls_u = torch.where(acc, torch.where(small, u.take(stalls) + 1, 0), u.take(stalls))
        trials_u = u.take(trials) + (~acc).long()
        done = (acc & (stalls_u >= 3)) | (~acc & (trials_u >= max_trials))
        new = [  # every new value first: with every group running, take() returns views
            (b, torch.where(acc.unsqueeze(-1), trial, u.take(b))),
            (jtj, torch.where(acc[:, None, None], jtj_new, u.take(jtj))),
            (jtr, torch.where(acc.unsqueeze(-1), jtr_new, u.take(jtr))),
            (half_ss, torch.where(acc, hs_new, hs_old)),
            (lam, torch.where(acc, lam_u * gain, lam_u * nu_u)),
            (nu, torch.where(acc, 2.0, nu_u * 2)),
            (stalls, stalls_u),
            (trials, trials_u),
            (new_point, acc),
            (status, torch.where(done, NO_PROGRESS, RUNNING)),
        ]
        for state, value in new:
            u.put(state, value)


def _offset_squared(data, idx, b, fresh, gram, ga, d):
    """|U^T r|^2 = g^T (A^T A)^-1 g, (kf,); by SVD of A where A^T A is singular (a
    rank-deficient point: r is projected on A's column space)."""
    _, ok, half = spd_solve(gram, ga)  # |c|^2 = |L^-1 g|^2 with L L^T = A^T A
    out = half.pow(2).sum(-1)
    singular = (~ok | ~torch.isfinite(out)).nonzero().flatten()
    if len(singular):
        at = fresh[singular]
        r, cols = data.residuals_and_jacobian(idx[at], b[at])
        a = torch.stack(cols, -1) / d[singular].unsqueeze(1)  # (ks, M, p)
        u, s, _ = torch.linalg.svd(a, full_matrices=False)
        c = (u.mT @ r.unsqueeze(-1)).squeeze(-1)
        c = torch.where(s > s[:, :1] * EPS * max(a.shape[1:]), c, torch.zeros_like(c))
        out[singular] = c.pow(2).sum(-1)
    return out


def _standard_errors(jtj, rss, n, absolute_sigma):
    """sqrt(diag(cov)), (G, p): cov = (J^T J)^-1, times rss / (n - p) unless
    absolute_sigma, from the Cholesky factor of the column-scaled J^T J; NaN where that
    is not positive definite (rank deficient), n <= p, or the group failed."""
    p = jtj.shape[-1]
    d = torch.diagonal(jtj, dim1=-2, dim2=-1).sqrt()  # (G, p) column norms
    d = torch.where(d == 0, torch.ones_like(d), d)
    gram = jtj / (d.unsqueeze(-1) * d.unsqueeze(-2))
    eye = torch.eye(p, dtype=jtj.dtype, device=jtj.device)
    solved = [spd_solve(gram, eye[j].expand(len(gram), p)) for j in range(p)]
    var = torch.stack([x[:, j] for j, (x, _, _) in enumerate(solved)], -1) / (d * d)
    info = (~solved[0][1]).long()  # not positive definite: rank deficient
    dof = n - p
    if not absolute_sigma:
        var = var * (rss / dof.clamp(min=1)).unsqueeze(-1)
    bad = (info != 0) | (dof < 0 if absolute_sigma else dof <= 0) | ~torch.isfinite(rss)
    return torch.where(bad.unsqueeze(-1), torch.full_like(var, math.nan), var.sqrt())
