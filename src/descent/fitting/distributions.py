"""Student's t distribution for confidence intervals, without scipy at run time.

    t_cdf(x, nu) = 1 - I_z(nu/2, 1/2) / 2 for x >= 0, z = nu / (nu + x^2)
    t_ppf(q, nu) = the x with t_cdf(x, nu) = q

I is the regularised incomplete beta function, evaluated by its continued fraction
(modified Lentz; Numerical Recipes 6.4). t_ppf starts from the normal quantile and
Cornish-Fisher's first terms, then takes safeguarded Newton steps on log-tail
probabilities; nu = 1 and nu = 2 have closed forms. tests/test_fitting_distributions.py
checks both against scipy.stats to 1e-12 for nu from 1 to 10^6.

The F test with one constrained parameter, lmfit's `f_compare`, is the same
distribution: F(1, nu) = T^2, so  F_cdf(f; 1, nu) = 2 t_cdf(sqrt(f), nu) - 1.
"""

from __future__ import annotations

import math
from statistics import NormalDist

ONE_SIGMA = math.erf(1 / math.sqrt(2))  # 0.682689...: the probability within 1 sigma
TWO_SIGMA = math.erf(2 / math.sqrt(2))  # 0.954499...


def sigma_probability(level: float) -> float:
    """lmfit's convention: a level < 1 is a probability, >= 1 a number of sigmas."""
    return level if level < 1 else math.erf(level / math.sqrt(2))


def betainc(a: float, b: float, x: float, xc: float | None = None) -> float:
    """The regularised incomplete beta function I_x(a, b), a, b > 0, 0 <= x <= 1.

    `xc` = 1 - x when the caller knows it more precisely than 1 - x rounds (x near 1
    with a large: a log x must then come from log1p(-xc))."""
    xc = 1.0 - x if xc is None else xc
    if x <= 0.0:
        return 0.0
    if xc <= 0.0:
        return 1.0
    log_x = math.log1p(-xc) if xc < 0.5 else math.log(x)
    log_xc = math.log1p(-x) if x < 0.5 else math.log(xc)
    log_front = a * log_x + b * log_xc - log_beta(a, b)
    if x < (a + 1) / (a + b + 2):  # the continued fraction converges fast here
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, xc) / b


def log_beta(a: float, b: float) -> float:
    """log B(a, b) = lgamma(a) + lgamma(b) - lgamma(a + b), accurate when one argument
    is large (many degrees of freedom): there the difference of two large lgammas
    would lose digits, so lgamma(a + b) - lgamma(a) comes from Stirling's series."""
    big, small = max(a, b), min(a, b)
    if big < 100:
        return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)

    def series(z: float) -> float:  # lgamma(z) - ((z - 1/2) log z - z + log(2 pi)/2)
        return 1 / (12 * z) - 1 / (360 * z**3) + 1 / (1260 * z**5)

    # lgamma(big + small) - lgamma(big), each by Stirling, differenced term by term
    diff = (
        (big - 0.5) * math.log1p(small / big)
        + small * math.log(big + small)
        - small
        + series(big + small)
        - series(big)
    )
    return math.lgamma(small) - diff


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) by the modified Lentz method."""
    tiny, eps = 1e-300, 1e-16
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100_000):  # about sqrt(max(a, b)) terms are needed
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                   -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):  # fmt: skip
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            return h
    raise ArithmeticError(f"incomplete beta: no convergence for a={a}, b={b}, x={x}")


def t_sf(x: float, nu: float) -> float:
    """P(T > x) for Student's t with nu degrees of freedom."""
    if math.isinf(x):
        return 0.0 if x > 0 else 1.0
    x2 = x * x
    tail = 0.5 * betainc(nu / 2, 0.5, nu / (nu + x2), x2 / (nu + x2))  # P(T > |x|)
    return tail if x >= 0 else 1.0 - tail


def t_cdf(x: float, nu: float) -> float:
    """P(T <= x)."""
    return t_sf(-x, nu)


def t_pdf(x: float, nu: float) -> float:
    log_c = math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2) - 0.5 * math.log(nu * math.pi)
    return math.exp(log_c - (nu + 1) / 2 * math.log1p(x * x / nu))


def t_ppf(q: float, nu: float) -> float:
    """The q-quantile of Student's t with nu > 0 degrees of freedom (0 < q < 1)."""
    if not 0.0 < q < 1.0:
        if q in (0.0, 1.0):
            return math.copysign(math.inf, q - 0.5)
        raise ValueError(f"a probability must lie in [0, 1], got {q}")
    if nu <= 0 or not math.isfinite(nu):
        raise ValueError(f"degrees of freedom must be positive and finite, got {nu}")
    if q > 0.5:
        return -t_ppf(1.0 - q, nu)
    if q == 0.5:
        return 0.0
    if nu == 1:
        return -1.0 / math.tan(math.pi * q)
    if nu == 2:
        return (2 * q - 1) / math.sqrt(2 * q * (1 - q))
    # q < 0.5: the answer is negative; solve log P(T <= x) = log q for x.
    z = NormalDist().inv_cdf(q)
    x = z + (z**3 + z) / (4 * nu) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * nu * nu)
    lo, hi = -math.inf, 0.0  # bracket on the answer
    for _ in range(100):
        p = t_cdf(x, nu)
        if p > q:
            hi = x
        else:
            lo = x
        # Newton on log p: x -= (log p - log q) * p / pdf  (well scaled deep in the tail)
        step = (math.log(p) - math.log(q)) * p / t_pdf(x, nu) if p > 0 else math.inf
        new = x - step
        if not (lo < new < hi):  # outside the bracket: bisect (or double outwards)
            new = 0.5 * (lo + hi) if math.isfinite(lo) else 2 * x - 1
        if abs(new - x) <= 1e-15 * abs(x):
            return new
        x = new
    return x


def t_interval_factor(probability: float, nu: float) -> float:
    """The half-width of a two-sided `probability` interval in standard errors:
    t_ppf((1 + probability) / 2, nu)."""
    return t_ppf((1.0 + probability) / 2.0, nu)
