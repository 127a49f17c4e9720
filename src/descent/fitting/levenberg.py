"""Levenberg-Marquardt with torch.optim's interface: the default solver of `descent fit`
(standard errors and lmfit's statistics from its Jacobian: statistics.py).

Every step is still "predict, measure, differentiate, step": the derivative is of
each residual r_k = f(x_k, b) - y_k rather than of their sum of squares, and the
step solves the damped Gauss-Newton equations instead of scaling the gradient.

The Jacobian costs one backward pass: observation k gets its own copy of the
parameters (row i of B is b_i expanded to n, no copy), so the gradient of
sum(r) with respect to B[i, k] is dr_k/db_i. That needs an elementwise model
(prediction k depends on observation k only), which every formula is; other
models fall back to torch.func.jacrev.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

EPS = float(np.finfo(np.float64).eps)


class NotFinite(ArithmeticError):
    """The residuals, their sum of squares or the Jacobian are not all finite at the
    point a fit starts from (later points are only accepted when finite)."""


def require_finite(sum_sq: float, jt: torch.Tensor) -> None:
    """NotFinite unless the sum of squared residuals and every Jacobian entry are
    finite: where no step can be computed (the SVD fails, or reports convergence)."""
    if not (math.isfinite(sum_sq) and math.isfinite(float(jt.sum()))):
        raise NotFinite("the residuals or their Jacobian are not finite at the start")


class Residuals:
    """r(b) = (f(x, b) - y) / sigma, and on demand J^T = (dr/db)^T, (p, n), at the last
    point. `sigma` (n,) are the rows' standard uncertainties (None: all 1), so the sum
    of squares is chi-square."""

    def __init__(
        self,
        f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        x: torch.Tensor,
        y: torch.Tensor,
        elementwise: bool = True,
        sigma: torch.Tensor | None = None,
    ) -> None:
        self.f, self.x, self.y, self.elementwise, self.sigma = f, x, y, elementwise, sigma
        self.evals = self.jac_evals = 0

    def __call__(self, b: torch.Tensor) -> torch.Tensor:
        """Residuals at b, (n,), remembering the graph for `jacobian_t`."""
        self.evals += 1
        n = self.y.shape[0]
        with torch.enable_grad():
            if self.elementwise:  # rows of b expanded to (p, n): a view, no copy
                self.rows = b.detach().requires_grad_(True).unsqueeze(1).expand(-1, n).unbind(0)
                r = self.f(self.x, self.rows) - self.y
            else:
                self.b = b.detach().clone()
                r = self.f(self.x, self.b) - self.y
            if self.sigma is not None:
                r = r / self.sigma
        self.r = r if r.shape == (n,) else torch.broadcast_to(r, (n,))
        return self.r.detach()

    def jacobian_t(self) -> torch.Tensor:
        """(p, n): row i is dr/db_i at the point of the last call."""
        self.jac_evals += 1
        if not self.elementwise:
            w = 1.0 if self.sigma is None else self.sigma
            return torch.func.jacrev(lambda b: (self.f(self.x, b) - self.y) / w)(self.b).T
        if not self.r.requires_grad:  # the formula does not depend on any parameter
            return torch.zeros(len(self.rows), len(self.r), dtype=self.r.dtype)
        # The gradient of the scalar sum(r): passing grad_outputs=ones(n) instead would
        # save the sum node, but autograd then imports its symbolic-shape checks (sympy,
        # ~0.8 s, more than a small fit takes).
        with torch.enable_grad():
            grads = torch.autograd.grad(self.r.sum(), self.rows, allow_unused=True)
        return torch.stack([torch.zeros_like(self.r) if g is None else g for g in grads])


def decompose(jt: torch.Tensor, r: torch.Tensor, floor: np.ndarray | None = None):
    """J D^-1 = U diag(S) Vh with D the column norms of J (1 where a column is 0), or
    their elementwise maximum with `floor` when given (the optimizer's running D).

    Returns (D, S, Vh, c = U^T r) as numpy arrays. Small n: SVD of J D^-1. Large n:
    the eigen-decomposition of the scaled Gram matrix when it is well conditioned
    (O(n p^2), no (n, p) copies), else QR, then the SVD of R."""
    p, n = jt.shape
    if n > 4096:
        gram = (jt @ jt.T).numpy()
        d = _scaling(np.sqrt(np.diag(gram)), floor)
        w, v = np.linalg.eigh(gram / np.outer(d, d))
        if w[0] > w[-1] * 1e-10:
            s, vh = np.sqrt(w[::-1]), v[:, ::-1].T
            return d, s, vh, (vh @ ((jt @ r).numpy() / d)) / s
    jn = jt.numpy().T  # (n, p)
    d = _scaling(np.sqrt(np.einsum("ij,ij->j", jn, jn)), floor)
    a = jn / d
    if n > 4096:
        q, rr = np.linalg.qr(a)
        ur, s, vh = np.linalg.svd(rr)
        return d, s, vh, ur.T @ (q.T @ r.numpy())
    u, s, vh = np.linalg.svd(a, full_matrices=False)
    return d, s, vh, u.T @ r.numpy()


def _scaling(norms: np.ndarray, floor: np.ndarray | None) -> np.ndarray:
    d = norms if floor is None else np.maximum(norms, floor)
    d[d == 0] = 1.0
    return d


class LevenbergMarquardt:
    """Levenberg-Marquardt for one float64 parameter vector (MINPACK scaling,
    Nielsen damping). One `step` = one Jacobian, then trial points until the sum of
    squares goes down.

    With J D^-1 = U S Vh (D: the running maximum of J's column norms) the trial step
    is delta = -D^-1 Vh^T diag(S / (S^2 + lam)) U^T r, and lam starts at tau * S_max^2.
    The gain ratio rho = actual / predicted decrease decides: rho > 0 accepts and sets
    lam *= max(shrink, 1 - (2 rho - 1)^3); otherwise lam *= nu and nu doubles.

    The stopping rule, checked at every Jacobian (n observations, p parameters), sets
    `status`:
      "converged"    ||U^T r|| <= tol * ||r|| / sqrt(n - p): the Gauss-Newton step is
                     shorter than `tol` standard errors in every parameter (Bates and
                     Watts' relative-offset criterion);
      "no_progress"  the sum of squares fell by at most 4 eps of itself in 3 steps in a
                     row, or `max_trials` trial steps in a row failed to lower it: the
                     attainable precision is reached (zero-residual data, for one).

    `bounds` = (lower, upper), (p,) each (+-inf where open), keeps lower <= b <= upper
    by a projected, active-set step: a parameter on a bound that the gradient
    g = J^T r pushes outwards (b_i = lower_i with g_i > 0, or upper_i with g_i < 0) is
    held this step; the others take the step above, computed from their own columns;
    the trial point is clipped into the box, and rho uses the clipped step s:
    predicted = -(r . J s) - |J s|^2 / 2. The relative offset is then measured over
    the free columns, so "converged" means the Karush-Kuhn-Tucker conditions hold.
    A parameter ends exactly on its bound. The start must lie inside the box.

    It offers the part of torch.optim.Optimizer's interface that the loop and the
    checkpoints use (`param_groups`, `state`, `defaults`, `step`, `zero_grad`,
    `state_dict` and `load_state_dict` in torch.optim's layout) without being one: it
    scales no gradient, and constructing any torch.optim.Optimizer imports
    torch._dynamo (1-2 s, more than a small fit takes). `lr` is accepted for a uniform
    interface and not used. It is trained by fitting/learner.py's JacobianLearner,
    whose steps 2-4 read the residuals this optimizer evaluates (`jacobian_based`).
    """

    jacobian_based = True

    def __init__(
        self,
        params,
        residuals: Residuals,
        lr: float = 1.0,
        tol: float = 1e-6,
        tau: float = 1e-4,
        shrink: float = 1 / 30,
        max_trials: int = 12,
        bounds: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        params = list(params)
        if len(params) != 1 or not isinstance(params[0], torch.Tensor):
            raise ValueError("LevenbergMarquardt takes one parameter vector")
        self.defaults = {"lr": lr, "tol": tol, "tau": tau, "shrink": shrink,
                         "max_trials": max_trials}  # fmt: skip
        self.param_groups = [{**self.defaults, "params": params}]
        self.state: dict[torch.Tensor, dict] = {}  # keyed by the parameter, as torch.optim's
        self.residuals = residuals
        self.bounds = None if bounds is None else tuple(t.numpy() for t in bounds)
        self.status: str | None = None
        self.decomposition = None  # (D, S, Vh, U^T r) at the last Jacobian
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None  # r, J^T at the params

    @property
    def param(self) -> torch.Tensor:
        return self.param_groups[0]["params"][0]

    def _residuals_and_jacobian(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._cache is None:
            r = self.residuals(self.param)
            self._cache = (r, self.residuals.jacobian_t())
        return self._cache

    def predictions_and_loss(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(f(x, b), mean squared residual) at the current parameters, from the
        residuals the next step uses: the Learner's predict and loss for this solver."""
        r, _ = self._residuals_and_jacobian()
        sigma = self.residuals.sigma
        return (r if sigma is None else r * sigma) + self.residuals.y, (r @ r) / len(r)

    def residuals_and_jacobian_at(self, b: torch.Tensor):
        """The cached (r, J^T) when they belong to parameters `b`, else None."""
        if self._cache is not None and torch.equal(self.param.detach(), b):
            return self._cache
        return None

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> float:
        g, b = self.param_groups[0], self.param
        st = self.state.setdefault(b, {})
        r, jt = self._residuals_and_jacobian()
        p, n = jt.shape
        f = 0.5 * float(r @ r)
        require_finite(f, jt)
        old_d = st.get("D")
        b0 = b.detach().numpy().copy()
        free = None if self.bounds is None else free_columns(b0, jt, r, *self.bounds)
        if free is None:
            big_d, s, vh, c = decompose(jt, r, None if old_d is None else old_d.numpy())
            st["D"] = torch.from_numpy(big_d)
        else:  # the running D over all columns; the step from the free ones
            norms = torch.linalg.vector_norm(jt, dim=1).numpy()
            st["D"] = torch.from_numpy(_scaling(norms, None if old_d is None else old_d.numpy()))
            if len(free) == 0:  # every parameter held on a bound: a constrained optimum
                self.status = "converged"
                return f
            big_d, s, vh, c = decompose(jt[torch.from_numpy(free)], r, st["D"].numpy()[free])
        self.decomposition = (big_d, s, vh, c)
        self.status = None
        if math.sqrt(c @ c) <= g["tol"] * math.sqrt(2 * f / max(n - p, 1)):
            self.status = "converged"
            return f
        if "lam" not in st:
            st["lam"], st["nu"], st["stalls"] = g["tau"] * float(s[0]) ** 2, 2.0, 0
        c2, s2 = c * c, s * s
        for _ in range(g["max_trials"]):
            lam = st["lam"]
            delta = -(vh.T @ (s / (s2 + lam) * c)) / big_d
            predicted = 0.5 * float(c2 @ (1 - (lam / (s2 + lam)) ** 2))
            if free is not None:
                delta, predicted = projected_step(b0, delta, free, jt, r, *self.bounds)
            b.copy_(torch.from_numpy(b0 + delta))
            r_new = self.residuals(b)
            f_new = 0.5 * float(r_new @ r_new)
            rho = (f - f_new) / predicted if math.isfinite(f_new) and predicted > 0 else -1.0
            if rho > 0:
                jt_new = self.residuals.jacobian_t()
                if math.isfinite(float(jt_new.sum())):  # a cheap all-finite test
                    st["lam"] = lam * max(g["shrink"], 1 - (2 * rho - 1) ** 3)
                    st["nu"] = 2.0
                    st["stalls"] = st["stalls"] + 1 if f - f_new <= 4 * EPS * f else 0
                    self._cache = (r_new, jt_new)
                    if st["stalls"] >= 3:
                        self.status = "no_progress"
                    return f_new
            st["lam"], st["nu"] = lam * st["nu"], st["nu"] * 2
        b.copy_(torch.from_numpy(b0))
        self.status = "no_progress"
        return f

    def status_message(self) -> str:
        """Why `status` was set, in words (for the fit's stop message)."""
        if self.status == "converged":
            tol = self.param_groups[0]["tol"]
            return f"the Gauss-Newton step is below {tol:g} standard errors in every parameter"
        if self.status == "no_progress":
            return "the sum of squares can no longer be lowered in float64"
        return str(self.status)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Nothing to clear: this optimizer never fills .grad."""

    def state_dict(self) -> dict:
        """torch.optim's layout: {"state": {0: {"D", "lam", "nu", "stalls"}},
        "param_groups": [{settings..., "params": [0]}]} (copies, not references)."""
        group = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        st = self.state.get(self.param, {})
        state = {0: {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in st.items()}}
        return {"state": state if st else {}, "param_groups": [{**group, "params": [0]}]}

    def load_state_dict(self, state_dict: dict) -> None:
        """Take a `state_dict()` (or torch.optim's, of an earlier version of this class);
        ValueError when it is not one of this optimizer (one group, one parameter)."""
        groups, state = state_dict["param_groups"], state_dict["state"]
        if len(groups) != 1 or len(groups[0]["params"]) != 1 or set(state) - {0}:
            raise ValueError("the optimizer state is not one of LevenbergMarquardt's")
        b = self.param
        self.param_groups = [{**groups[0], "params": [b]}]
        self.state = {}
        if 0 in state:
            self.state[b] = {
                k: v.to(dtype=b.dtype, device=b.device) if isinstance(v, torch.Tensor) else v
                for k, v in state[0].items()
            }
        self._cache = None  # recomputed (bit for bit) from the parameters


def free_columns(
    b: np.ndarray, jt: torch.Tensor, r: torch.Tensor, lower: np.ndarray, upper: np.ndarray
) -> np.ndarray:
    """Indices of the parameters a bounded step may move: all but those on a bound
    that the gradient g = J^T r of |r|^2 / 2 pushes outwards."""
    grad = (jt @ r).numpy()  # (p, n) @ (n,) -> (p,)
    held = ((b <= lower) & (grad > 0)) | ((b >= upper) & (grad < 0))
    return np.flatnonzero(~held)


def projected_step(
    b0: np.ndarray,
    delta_free: np.ndarray,
    free: np.ndarray,
    jt: torch.Tensor,
    r: torch.Tensor,
    lower: np.ndarray,
    upper: np.ndarray,
) -> tuple[np.ndarray, float]:
    """(s, predicted decrease): the step of the free parameters clipped into the box,
    s = clip(b0 + delta, lower, upper) - b0, and the decrease of |r|^2 / 2 that the
    linear model predicts for it, -(r . J s) - |J s|^2 / 2."""
    delta = np.zeros_like(b0)
    delta[free] = delta_free
    step = np.clip(b0 + delta, lower, upper) - b0
    js = torch.from_numpy(step).to(jt.dtype) @ jt  # (p,) @ (p, n) -> (n,)
    return step, float(-(r @ js) - 0.5 * (js @ js))
