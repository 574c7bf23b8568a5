"""Probabilistic and Deflated Sharpe Ratios (Bailey and López de Prado, 2012 and 2014).

All Sharpe ratios here are per observation (not annualised); kurtosis is Pearson's (3 for a
normal distribution).

PSR (Bailey & López de Prado 2012, "The Sharpe Ratio Efficient Frontier") is the probability
that the true Sharpe ratio exceeds a benchmark ``SR*`` given ``n`` observations::

    PSR(SR*) = Φ( (SR - SR*) · sqrt(n - 1) / sqrt(1 - γ3·SR + (γ4 - 1)/4 · SR²) )

DSR (Bailey & López de Prado 2014, "The Deflated Sharpe Ratio") is PSR against the Sharpe
ratio expected from the best of ``N`` unskilled trials whose Sharpe ratios vary with variance
``V``::

    SR0 = sqrt(V) · ((1 - γ) Φ⁻¹(1 - 1/N) + γ Φ⁻¹(1 - 1/(N e)))      γ: Euler–Mascheroni

The 2014 paper's numerical example: N = 100 trials, annualised variance 1/2 of the trial
Sharpe ratios, best annualised SR 2.5 over 1,250 daily returns (250 a year), skewness -3,
kurtosis 10 gives SR0 ≈ 0.1132 and DSR ≈ 0.9004:

>>> round(expected_max_sharpe(100, 0.5 / 250), 4)
0.1132
>>> round(deflated_sharpe_ratio(2.5 / 250 ** 0.5, 1250, trials=100, variance=0.5 / 250,
...     skew=-3.0, kurtosis=10.0), 4)
0.9004
"""

from __future__ import annotations

import math

from scipy.stats import norm

__all__ = [
    "EULER_GAMMA",
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "probabilistic_sharpe_ratio",
]

EULER_GAMMA = 0.5772156649015329
"""The Euler–Mascheroni constant."""


def probabilistic_sharpe_ratio(
    sharpe: float,
    n: int,
    *,
    benchmark: float = 0.0,
    skew: float = 0.0,
    kurtosis: float = 3.0,
) -> float:
    """Return PSR: the probability that the true per-observation Sharpe exceeds ``benchmark``.

    NaN when it cannot be evaluated (fewer than 2 observations, a non-finite input, or a
    non-positive variance term).

    >>> round(probabilistic_sharpe_ratio(0.1, 101), 4)   # normal: Φ(0.1 · 10 / sqrt(1.005))
    0.8407
    >>> probabilistic_sharpe_ratio(0.1, 101, benchmark=0.1)
    0.5
    """
    values = (sharpe, benchmark, skew, kurtosis)
    if n < 2 or not all(math.isfinite(v) for v in values):
        return float("nan")
    variance = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if variance <= 0:
        return float("nan")
    z = (sharpe - benchmark) * math.sqrt(n - 1) / math.sqrt(variance)
    return float(norm.cdf(z))


def expected_max_sharpe(trials: int, variance: float) -> float:
    """Return SR0, the expected largest Sharpe ratio of ``trials`` unskilled trials.

    One trial (or none) means no selection: SR0 is 0.
    """
    if trials <= 1:
        return 0.0
    if not math.isfinite(variance) or variance < 0:
        return float("nan")
    quantiles = (1 - EULER_GAMMA) * norm.ppf(1 - 1 / trials) + EULER_GAMMA * norm.ppf(
        1 - 1 / (trials * math.e)
    )
    return float(math.sqrt(variance) * quantiles)


def deflated_sharpe_ratio(
    sharpe: float,
    n: int,
    *,
    trials: int,
    variance: float,
    skew: float = 0.0,
    kurtosis: float = 3.0,
) -> float:
    """Return DSR: PSR against the expected best Sharpe of ``trials`` unskilled trials.

    ``variance`` is the variance of the (per-observation) Sharpe ratios across the trials.
    """
    benchmark = expected_max_sharpe(trials, variance)
    return probabilistic_sharpe_ratio(sharpe, n, benchmark=benchmark, skew=skew, kurtosis=kurtosis)
