"""The hot path of fit_many (many.py): the groups' rows padded into one (M, G) array,
residuals and Jacobian columns for any subset of groups from one backward pass, their
p x p moments, and the vectorised Levenberg-Marquardt loop.

Layout: row m of group g sits at [m, g] of every (M, G) array (M: the longest group),
with weight w = 1/sigma on real rows and 0 on padding, so padded rows add nothing to
any sum. Position-major, so every per-group sum is a reduction over dim 0, which torch
vectorises across groups (several times faster than summing each group's M contiguous
rows). Parameter i of the k groups being evaluated is a (k,) tensor expanded to (M, k)
with stride 0 along M: every row gets its own "copy" of its group's parameters, as in
levenberg.Residuals, without copying anything, and one backward pass gives every
Jacobian column, (M, k) each. A column that the backward pass hands back as the very
tensor it was given (a parameter that is only added, such as an offset c) is known to
be all ones, and its moments are sums (or M) instead of products.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from descent.fitting.levenberg import EPS
from descent.fitting.small_linalg import largest_eigenvalue, spd_solve

RUNNING, CONVERGED, NO_PROGRESS, MAX_STEPS, FAILED = range(5)
STOPPED = ("running", "converged", "no_progress", "max_steps", "failed")


class Padded:
    """The rows of G groups padded to (M, G), and r, J for any subset of groups.

    `evaluate(columns, rows)` is the model: d input columns and p parameter rows, all
    broadcastable to (M, k), giving (M, k) predictions (Formula.evaluate, or a plain
    elementwise f(x, params) wrapped by `flat`)."""

    def __init__(self, evaluate: Callable, x, y, groups, n_groups, sigma) -> None:
        self.evaluate = evaluate
        n_rows, dev = len(y), y.device
        order = torch.argsort(groups, stable=True)
        g_sorted = groups[order]
        self.n = torch.bincount(groups, minlength=n_groups)  # (G,)
        self.m = m = int(self.n.max())
        first = torch.cumsum(self.n, 0) - self.n  # index of each group's first sorted row
        pos = torch.arange(n_rows, device=dev) - first[g_sorted]  # row within its group
        flat = pos * n_groups + g_sorted  # where each sorted row goes in (M * G)
        lead = order[first.clamp(max=n_rows - 1)]  # a real row of each group, to pad with
        xs = x.reshape(n_rows, -1).to(torch.float64)  # (N, d)
        pad_x = xs[lead].repeat(m, 1)  # (M * G, d): finite wherever there are data
        pad_x[flat] = xs[order]
        self.columns = tuple(
            pad_x[:, j].reshape(m, n_groups).contiguous() for j in range(xs.shape[1])
        )  # d of (M, G)
        self.y = torch.zeros(m * n_groups, dtype=torch.float64, device=dev)
        self.y[flat] = y[order].to(torch.float64)
        self.y = self.y.reshape(m, n_groups)  # (M, G)
        w = torch.zeros(m * n_groups, dtype=torch.float64, device=dev)
        w[flat] = 1.0 if sigma is None else 1.0 / sigma[order]
        self.w = w.reshape(m, n_groups)  # (M, G): 1/sigma on real rows, 0 on padding
        self.unit_weights = sigma is None and bool((self.n == m).all())
        # Reused buffers (M * G each): fresh multi-megabyte tensors every trial cost
        # page faults, not just arithmetic.
        self._ones = torch.ones(m * n_groups, dtype=torch.float64, device=dev)
        self._product = torch.empty(m * n_groups, dtype=torch.float64, device=dev)

    def residuals_and_jacobian(self, idx: torch.Tensor, b: torch.Tensor):
        """(r (M, k), J's p columns (M, k) each, unit (p,) bools: the column is all
        ones) for the groups `idx` (k,) at parameters b (k, p)."""
        k, p, m = len(idx), b.shape[1], self.m
        full = k == self.y.shape[1]  # every group: no gathers

        def take(t: torch.Tensor) -> torch.Tensor:
            return t if full else t.index_select(1, idx)

        ones = self._ones[: m * k].view(m, k)
        with torch.enable_grad():
            leaf = b.detach().T.contiguous().requires_grad_(True)  # (p, k)
            rows = [leaf[i].expand(m, k) for i in range(p)]  # stride 0 along M: no copies
            f = self.evaluate(tuple(take(c) for c in self.columns), rows)
            r = torch.broadcast_to(f, (m, k)) - take(self.y)
            if not self.unit_weights:  # 1/sigma on real rows, 0 on padding
                r = r * take(self.w)
            grads = [None] * p
            if r.requires_grad:
                grads = torch.autograd.grad(r, rows, ones, allow_unused=True)
        unit = [g is not None and g.data_ptr() == ones.data_ptr() for g in grads]
        cols = [torch.zeros_like(r) if g is None else g for g in grads]
        return r.detach(), cols, unit

    def moments(self, r: torch.Tensor, cols: list[torch.Tensor], unit: list[bool]):
        """(|r|^2 / 2 (k,), J^T J (k, p, p), J^T r (k, p)) from r (M, k) and J's p
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

        jtj = torch.empty(k, p, p, dtype=r.dtype, device=r.device)
        for i in range(p):
            for j in range(i, p):
                jtj[:, i, j] = jtj[:, j, i] = dot(cols[i], unit[i], cols[j], unit[j])
        jtr = torch.stack([dot(c, u, r, False) for c, u in zip(cols, unit, strict=True)], -1)
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


class Rows:
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


def levenberg_marquardt(data, idx, b, start, tau, shrink, tol, max_steps, max_trials):
    """Levenberg-Marquardt for the groups `idx` (k,) from b (k, p), all at once;
    `start` = data.moments at b. Returns (b, status, steps, |r|^2 / 2, J^T J) at the end,
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
            f = Rows(fresh, k)
            jtj_f, steps_f = f.take(jtj), f.take(steps)
            d_f = torch.maximum(torch.diagonal(jtj_f, dim1=-2, dim2=-1).sqrt(), f.take(d))
            d_f = torch.where(d_f == 0, 1.0, d_f)
            g_f = jtj_f / (d_f.unsqueeze(-1) * d_f.unsqueeze(-2))
            ga_f = f.take(jtr) / d_f
            offset2 = offset_squared(data, idx, b, fresh, g_f, ga_f, d_f)
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
        u = Rows(run, k)
        lam_u, nu_u, ga_u, hs_old = u.take(lam), u.take(nu), u.take(ga), u.take(half_ss)
        z = spd_solve(u.take(gram) + lam_u[:, None, None] * eye, ga_u)[0]  # (ku, p)
        predicted = 0.5 * ((z * ga_u).sum(-1) + lam_u * z.pow(2).sum(-1))
        trial = u.take(b) - z / u.take(d)
        hs_new, jtj_new, jtr_new = data.moments(*data.residuals_and_jacobian(idx[run], trial))
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


def offset_squared(data, idx, b, fresh, gram, ga, d):
    """|U^T r|^2 = g^T (A^T A)^-1 g, (kf,); by SVD of A where A^T A is singular (a
    rank-deficient point: r is projected on A's column space)."""
    _, ok, half = spd_solve(gram, ga)  # |c|^2 = |L^-1 g|^2 with L L^T = A^T A
    out = half.pow(2).sum(-1)
    singular = (~ok | ~torch.isfinite(out)).nonzero().flatten()
    if len(singular):
        at = fresh[singular]
        r, cols, _ = data.residuals_and_jacobian(idx[at], b[at])  # (M, ks) each
        a = torch.stack(cols, -1).transpose(0, 1) / d[singular].unsqueeze(1)  # (ks, M, p)
        r = r.T  # (ks, M)
        u, s, _ = torch.linalg.svd(a, full_matrices=False)
        c = (u.mT @ r.unsqueeze(-1)).squeeze(-1)
        c = torch.where(s > s[:, :1] * EPS * max(a.shape[1:]), c, torch.zeros_like(c))
        out[singular] = c.pow(2).sum(-1)
    return out


def standard_errors(jtj, rss, n, absolute_sigma):
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
