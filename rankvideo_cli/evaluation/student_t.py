"""The paired t-test's p-value without scipy: `scipy.stats.ttest_rel(a, b).pvalue`, two-sided, for `eval
--baseline` (scipy.stats takes 0.7 s to import, more than the whole evaluation of a run).

p = 2 * P(T > |t|) for Student's t with n - 1 degrees of freedom, which is I_x(df / 2, 1 / 2) with
x = df / (df + t^2), the regularized incomplete beta function, evaluated by its continued fraction (Lentz's
method, as Numerical Recipes' `betacf`). Tests hold it equal to scipy's to 1e-12 relative error up to
10,000 queries.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

_TINY = 1e-300
_EPSILON = 1e-16
_MAX_TERMS = 100_000  # convergence takes about sqrt(df) terms; this bounds a million queries


def paired_t_p_value(ours: Sequence[float], theirs: Sequence[float]) -> float:
    """Two-sided p-value of the paired t-test of `ours` against `theirs`; nan when it is undefined: fewer than
    2 pairs, a nan among the values (scipy propagates it), or every difference equal (zero variance: scipy
    divides by it, nan for 0/0 and p = 0 for a constant non-zero difference; rankvideo calls both untested)."""
    differences = [a - b for a, b in zip(ours, theirs, strict=True)]
    count = len(differences)
    if count < 2 or any(math.isnan(d) for d in differences) or all(d == differences[0] for d in differences):
        return math.nan
    mean = math.fsum(differences) / count
    variance = math.fsum((d - mean) ** 2 for d in differences) / (count - 1)
    if variance == 0.0:
        return math.nan
    t = mean / math.sqrt(variance / count)
    return two_sided_p(t, count - 1)


def two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with `df` degrees of freedom."""
    if math.isinf(t):
        return 0.0
    squared = t * t
    # x and 1 - x each from its own quotient: 1 - x would lose every digit of a small t
    return min(1.0, regularized_incomplete_beta(df / 2.0, 0.5, df / (df + squared), squared / (df + squared)))


def regularized_incomplete_beta(a: float, b: float, x: float, complement: float | None = None) -> float:
    """I_x(a, b) for a, b > 0 and 0 <= x <= 1; `complement`: 1 - x where the caller knows it more precisely."""
    y = 1.0 - x if complement is None else complement
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    large, small = max(a, b), min(a, b)
    log_x = math.log1p(-y) if y < 0.5 else math.log(x)  # x near 1: its logarithm from the precise 1 - x
    log_y = math.log1p(-x) if x < 0.5 else math.log(y)
    log_front = log_gamma_ratio(large, small) - math.lgamma(small) + a * log_x + b * log_y
    if x < (a + 1.0) / (a + b + 2.0):  # the fraction converges fast here; else use I_x(a, b) = 1 - I_y(b, a)
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, y) / b


def log_gamma_ratio(a: float, b: float) -> float:
    """log(Gamma(a + b) / Gamma(a)); for a large a from Stirling's series, whose terms cancel before rounding
    (the difference of two lgamma of ~a log a loses digits: a million queries would lose 7)."""
    if a < 100.0:
        return math.lgamma(a + b) - math.lgamma(a)

    def series(z: float) -> float:
        return 1.0 / (12.0 * z) - 1.0 / (360.0 * z**3) + 1.0 / (1260.0 * z**5)

    return (a - 0.5) * math.log1p(b / a) + b * math.log(a + b) - b + series(a + b) - series(a)


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    fraction = d
    for m in range(1, _MAX_TERMS):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            step = c * d
            fraction *= step
        if abs(step - 1.0) < _EPSILON:
            return fraction
    return fraction
