"""The lookahead audit: what a model said at bar ``t`` must not change when the future is cut.

For a seeded sample of scored bars, the candles are truncated right after bar ``t`` (same
first bar, nothing after ``t``), features and probabilities are recomputed through the same
predictor, and compared with the batch result at ``t``. Any difference beyond the numerical
tolerance — a feature that peeks ahead, a model whose output is not a function of its input —
fails the gate.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from alphaops.data.candles import Candles
from alphaops.gates.policy import LookaheadPolicy
from alphaops.gates.results import GateOutcome, check
from alphaops.scoring import BundlePredictor, Scores

__all__ = ["lookahead_audit"]


def _relative(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
    both_nan = np.isnan(a) & np.isnan(b)
    if np.any(np.isnan(a) != np.isnan(b)):
        return float("inf")
    diff = np.abs(a - b) / np.maximum(1.0, np.abs(b))
    return float(np.max(np.where(both_nan, 0.0, diff), initial=0.0))


def lookahead_audit(
    predictor: BundlePredictor,
    candles: Candles,
    batch: Scores,
    policy: LookaheadPolicy | None = None,
) -> GateOutcome:
    """Recompute a sample of ``batch`` from truncated ``candles`` and compare.

    ``batch`` must be ``predictor.score(candles)`` (possibly restricted to a window).
    """
    policy = policy or LookaheadPolicy()
    if len(batch) == 0:
        note = "no scored bars to audit"
        checks = [
            check("max_probability_difference", None, "<=", policy.tolerance, "", note=note),
        ]
        return GateOutcome.of("lookahead", checks, summary=note)
    rng = np.random.default_rng(policy.seed)
    size = min(policy.samples, len(batch))
    picks = np.sort(rng.choice(len(batch), size=size, replace=False))
    # The last scored bar is always audited: it is where a lookahead shows first.
    picks = np.unique(np.concatenate([picks[: size - 1], [len(batch) - 1]]))
    stamps = candles.timestamps_ms
    all_features = predictor.features(candles)
    worst_p = worst_f = 0.0
    mismatched: list[str] = []
    for pick in picks:
        t = int(batch.timestamps_ms[pick])
        row = int(np.searchsorted(stamps, t))
        cut = Candles.from_frame(
            candles.frame.iloc[: row + 1], symbol=candles.symbol, timeframe=candles.timeframe
        )
        again = predictor.score(cut)
        f_diff = _relative(predictor.features(cut)[-1], all_features[row])
        if len(again) == 0 or int(again.timestamps_ms[-1]) != t:
            p_diff = float("inf")
        else:
            p_diff = float(
                np.max(
                    np.abs(again.probabilities[-1].astype(np.float64) - batch.probabilities[pick])
                )
            )
        worst_p, worst_f = max(worst_p, p_diff), max(worst_f, f_diff)
        if p_diff > policy.tolerance or f_diff > policy.tolerance:
            mismatched.append(str(np.datetime64(t, "ms")))
    shown = ", ".join(mismatched[:3]) + (" …" if len(mismatched) > 3 else "")
    note = f"differs at {shown}" if mismatched else ""
    checks = [
        check(
            "max_probability_difference",
            worst_p,
            "<=",
            policy.tolerance,
            f"largest |batch - truncated| probability over {picks.size} bars",
            note=note,
        ),
        check(
            "max_feature_difference",
            worst_f,
            "<=",
            policy.tolerance,
            "largest relative |batch - truncated| feature",
            note=note,
        ),
        check(
            "mismatched_bars",
            float(len(mismatched)),
            "==",
            0.0,
            f"bars whose recomputation differs, of {picks.size} audited",
        ),
    ]
    return GateOutcome.of(
        "lookahead",
        checks,
        summary=f"{picks.size} bars recomputed from data truncated at their time",
        data={"audited": [int(batch.timestamps_ms[p]) for p in picks], "mismatched": mismatched},
    )
