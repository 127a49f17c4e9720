"""Small dense linear algebra for many p x p problems at once (fitting/many_solver.py).

Batch-last layout: k matrices are one (p, p, k) tensor and k vectors one (p, k), so
entry (i, j) of every matrix is a contiguous (k,) vector. Each operation is then a
short sequence of vector operations of length k, which for small p is several times
faster on a CPU than torch.linalg's LAPACK call per matrix, or than the same
arithmetic on (k, p, p) tensors (strided, short inner loops); it is the same code on a
GPU.
"""

from __future__ import annotations

import torch


def spd_solve(a: torch.Tensor, b: torch.Tensor, back: bool = True):
    """(x, ok, y): x = a^-1 b for symmetric positive definite a (p, p, k), b (p, k), by
    the Cholesky factorisation L L^T = a written out over the p columns (p^3 / 6
    vector operations of length k; torch.linalg for p > 6); y = L^-1 b; ok (k,) is
    False where a is not numerically positive definite (x and y are then meaningless
    there). back=False skips the back substitution (x is None): for y alone."""
    p, k = b.shape
    if p > 6:
        chol, info = torch.linalg.cholesky_ex(a.permute(2, 0, 1))
        y = torch.linalg.solve_triangular(chol, b.T.unsqueeze(-1), upper=False)
        x = torch.linalg.solve_triangular(chol.mT, y, upper=True)
        return x.squeeze(-1).T, info == 0, y.squeeze(-1).T
    low = [[None] * p for _ in range(p)]  # low[i][j] = L[i, j], (k,)
    ok = torch.ones(k, dtype=torch.bool, device=b.device)
    for j in range(p):
        s = a[j, j]
        for m in range(j):
            s = s - low[j][m] * low[j][m]
        ok &= s > 0
        low[j][j] = s.clamp(min=1e-300).sqrt()
        for i in range(j + 1, p):
            s = a[i, j]
            for m in range(j):
                s = s - low[i][m] * low[j][m]
            low[i][j] = s / low[j][j]
    y: list = []
    for i in range(p):  # L y = b
        s = b[i]
        for m in range(i):
            s = s - low[i][m] * y[m]
        y.append(s / low[i][i])
    if not back:
        return None, ok, torch.stack(y)
    x: list = [None] * p
    for i in reversed(range(p)):  # L^T x = y
        s = y[i]
        for m in range(i + 1, p):
            s = s - low[m][i] * x[m]
        x[i] = s / low[i][i]
    return torch.stack(x), ok, torch.stack(y)


def largest_eigenvalue(a: torch.Tensor) -> torch.Tensor:
    """The largest eigenvalue of each symmetric a (p, p, k), (k,): in closed form for
    p <= 3 (the trigonometric solution of the characteristic cubic, Smith 1961), else
    LAPACK."""
    p = a.shape[0]
    if p == 1:
        return a[0, 0]
    if p == 2:
        mean, half = (a[0, 0] + a[1, 1]) / 2, (a[0, 0] - a[1, 1]) / 2
        return mean + torch.sqrt(half * half + a[0, 1] ** 2)
    if p > 3:
        return torch.linalg.eigvalsh(a.permute(2, 0, 1))[:, -1]
    q = (a[0, 0] + a[1, 1] + a[2, 2]) / 3  # a = q I + s B, det(B) = 2 cos(3 phi)
    off = a[0, 1] ** 2 + a[0, 2] ** 2 + a[1, 2] ** 2
    diag = a[0, 0] - q, a[1, 1] - q, a[2, 2] - q
    s = torch.sqrt((diag[0] ** 2 + diag[1] ** 2 + diag[2] ** 2 + 2 * off) / 6)
    safe = torch.where(s > 0, s, 1.0)
    b00, b11, b22 = (v / safe for v in diag)
    b01, b02, b12 = a[0, 1] / safe, a[0, 2] / safe, a[1, 2] / safe
    det = (
        b00 * (b11 * b22 - b12 * b12)
        - b01 * (b01 * b22 - b12 * b02)
        + b02 * (b01 * b12 - b11 * b02)
    )
    phi = torch.acos((det / 2).clamp(-1, 1)) / 3
    return q + 2 * s * torch.cos(phi)  # s = 0: a multiple of I, every eigenvalue q


def inverse_diagonal(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(diag(a^-1) (p, k), ok (k,)) for symmetric positive definite a (p, p, k)."""
    p, k = a.shape[0], a.shape[-1]
    eye = torch.eye(p, dtype=a.dtype, device=a.device)
    solved = [spd_solve(a, eye[j].unsqueeze(-1).expand(p, k)) for j in range(p)]
    return torch.stack([x[j] for j, (x, _, _) in enumerate(solved)]), solved[0][1]
