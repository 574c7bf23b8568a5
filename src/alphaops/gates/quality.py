"""The quality gate: refuse degenerate output before a model can trade.

On an out-of-sample window of :class:`~alphaops.scoring.Scores` it checks that

- no action exceeds ``max_majority_share`` of the outputs (majority bias);
- the confidence (probability of the predicted class) varies: std at least
  ``min_confidence_std`` and P10–P90 range at least ``min_confidence_p10_p90``;
- the output is not constant (std below ``constant_std``, or P10 equal to P90);
- HOLD does not swallow the outputs (above ``max_hold_share``) while confidences sit in the
  dead zone ``[dead_zone_low, dead_zone_high]``.

Too few bars, or a non-finite probability, make every check unevaluable, hence failed.

>>> import numpy as np
>>> from alphaops.scoring import Scores
>>> flat = np.tile(np.array([[0.25, 0.5, 0.25]], dtype=np.float32), (500, 1))
>>> outcome = quality_gate(Scores(np.arange(500), flat, ("SELL", "HOLD", "BUY")))
>>> outcome.passed, [c.name for c in outcome.failed]
(False, ['majority_share', 'confidence_std', 'confidence_p10_p90', 'constant_output', 'hold_dead_zone'])
"""

from __future__ import annotations

import numpy as np

from alphaops.gates.policy import QualityPolicy
from alphaops.gates.results import Check, GateOutcome, check
from alphaops.scoring import ACTIONS, Scores

__all__ = ["quality_figures", "quality_gate"]


def quality_figures(scores: Scores, policy: QualityPolicy | None = None) -> dict[str, float]:
    """Return action shares, confidence std/P10/P90 and the dead-zone share of ``scores``."""
    policy = policy or QualityPolicy()
    n = len(scores)
    figures: dict[str, float] = {"rows": float(n)}
    if n == 0:
        return figures
    # The model's own output (argmax), not the decision rule's positions: a rule that stays
    # flat most bars is intended, a model that predicts one class on most bars is degenerate.
    actions = scores.predicted_actions
    for value, name in zip((-1, 0, 1), ACTIONS, strict=True):
        figures[f"share_{name}"] = float(np.mean(actions == value))
    confidence = scores.confidence
    figures["finite"] = float(np.isfinite(scores.probabilities).all())
    figures["confidence_mean"] = float(np.mean(confidence))
    figures["confidence_std"] = float(np.std(confidence))
    figures["confidence_p10"] = float(np.percentile(confidence, 10))
    figures["confidence_p90"] = float(np.percentile(confidence, 90))
    figures["confidence_p10_p90"] = figures["confidence_p90"] - figures["confidence_p10"]
    in_zone = (confidence >= policy.dead_zone_low) & (confidence <= policy.dead_zone_high)
    figures["dead_zone_share"] = float(np.mean(in_zone))
    figures["majority_share"] = max(figures[f"share_{a}"] for a in ACTIONS)
    return figures


def quality_gate(scores: Scores, policy: QualityPolicy | None = None) -> GateOutcome:
    """Judge ``scores`` for degenerate output; every check reports value, threshold, verdict."""
    policy = policy or QualityPolicy()
    f = quality_figures(scores, policy)
    n = len(scores)
    usable = n >= policy.min_rows and f.get("finite", 0.0) == 1.0
    why = (
        ""
        if usable
        else (
            f"only {n} scored bars (need {policy.min_rows})"
            if n < policy.min_rows
            else "the model output holds NaN or infinite probabilities"
        )
    )

    def value(name: str) -> float | None:
        return f.get(name) if usable else None

    majority = max(ACTIONS, key=lambda a: f.get(f"share_{a}", 0.0)) if n else "-"
    std, p10, p90 = value("confidence_std"), value("confidence_p10"), value("confidence_p90")
    constant: float | None = None
    if std is not None and p10 is not None and p90 is not None:
        constant = 1.0 if (std < policy.constant_std or p10 == p90) else 0.0
    hold, zone = value("share_HOLD"), value("dead_zone_share")
    collapsed: float | None = None
    if hold is not None and zone is not None:
        collapsed = (
            hold if (hold > policy.max_hold_share and zone >= policy.min_dead_zone_share) else 0.0
        )
    checks: list[Check] = [
        check(
            "majority_share",
            value("majority_share"),
            "<=",
            policy.max_majority_share,
            f"share of the most frequent action ({majority})",
            note=why,
        ),
        check(
            "confidence_std",
            std,
            ">=",
            policy.min_confidence_std,
            "std of the confidence (collapsed when small)",
            note=why,
        ),
        check(
            "confidence_p10_p90",
            value("confidence_p10_p90"),
            ">=",
            policy.min_confidence_p10_p90,
            "confidence P90 - P10 (too narrow when small)",
            note=why,
        ),
        check(
            "constant_output",
            constant,
            "==",
            0.0,
            f"constant output (1 when std < {policy.constant_std:g} or P10 == P90)",
            note=why,
        ),
        check(
            "hold_dead_zone",
            collapsed,
            "==",
            0.0,
            f"HOLD share when above {policy.max_hold_share:g} with "
            f"{'n/a' if zone is None else f'{zone:.0%}'} of confidences in "
            f"[{policy.dead_zone_low:g}, {policy.dead_zone_high:g}] (0 = no collapse)",
            note=why,
        ),
    ]
    verdict = "degenerate output" if not all(c.passed for c in checks) else "output is varied"
    return GateOutcome.of(
        "quality", checks, summary=f"{verdict} on {n} bars", data={"figures": dict(f)}
    )
