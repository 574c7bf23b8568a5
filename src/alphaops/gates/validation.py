"""The validation gate: classification metrics on the out-of-sample window, vs the champion.

Labels come from the candles with the model's own label rule; only bars that both models
scored and that carry a label count, so candidate and champion are judged on the same bars.
The candidate must clear absolute thresholds (balanced accuracy above chance, log loss and
Brier score no worse than a uniform guess) and, when a champion exists, must not trail it by
more than the tolerances. Without a champion only the absolute thresholds apply, and the
outcome says so.

>>> import numpy as np
>>> p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], dtype=np.float32)
>>> m = classification_metrics(p, np.array([0, 1, 1]))
>>> round(m["accuracy"], 4), m["balanced_accuracy"], round(m["log_loss"], 4), round(m["brier"], 4)
(0.6667, 0.75, 0.4149, 0.2733)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from alphaops.data.candles import Candles
from alphaops.features import LabelRule, make_labels
from alphaops.gates.policy import ValidationPolicy
from alphaops.gates.results import Check, GateOutcome, check, info
from alphaops.scoring import Scores

__all__ = ["classification_metrics", "labels_at", "validation_gate"]

_EPS = 1e-15


def classification_metrics(
    probabilities: npt.NDArray[Any], labels: npt.NDArray[np.int64]
) -> dict[str, float]:
    """Return accuracy, balanced accuracy, log loss and (multi-class) Brier score."""
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(probabilities, dtype=np.float64)
    n, k = p.shape
    if n == 0:
        nan = float("nan")
        return {"accuracy": nan, "balanced_accuracy": nan, "log_loss": nan, "brier": nan, "rows": 0}
    predicted = np.argmax(p, axis=1)
    recalls = [float(np.mean(predicted[y == c] == c)) for c in range(k) if np.any(y == c)]
    onehot = np.eye(k)[y]
    return {
        "accuracy": float(np.mean(predicted == y)),
        "balanced_accuracy": float(np.mean(recalls)),
        "log_loss": float(-np.mean(np.log(np.clip(p[np.arange(n), y], _EPS, 1.0)))),
        "brier": float(np.mean(np.sum((p - onehot) ** 2, axis=1))),
        "rows": float(n),
    }


def labels_at(candles: Candles, rule: LabelRule) -> dict[int, int]:
    """Return ``{bar open time ms: label}`` for every bar of ``candles`` with a full horizon."""
    result = make_labels(candles, rule)
    stamps = result.frame["timestamp"].to_numpy(dtype="datetime64[ms]").astype(np.int64)
    return dict(zip(stamps.tolist(), result.frame["label"].to_numpy().tolist(), strict=True))


def _common(
    labels: dict[int, int], candidate: Scores, champion: Scores | None
) -> npt.NDArray[np.int64]:
    stamps = set(candidate.timestamps_ms.tolist()) & set(labels)
    if champion is not None:
        stamps &= set(champion.timestamps_ms.tolist())
    return np.array(sorted(stamps), dtype=np.int64)


def _at(scores: Scores, stamps: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
    order = np.argsort(scores.timestamps_ms)
    index = order[np.searchsorted(scores.timestamps_ms, stamps, sorter=order)]
    return scores.probabilities[index]


def validation_gate(
    candidate: Scores,
    candles: Candles,
    rule: LabelRule,
    *,
    champion: Scores | None = None,
    policy: ValidationPolicy | None = None,
    min_rows: int = 100,
) -> GateOutcome:
    """Judge the candidate's metrics against absolute thresholds and the champion's."""
    policy = policy or ValidationPolicy()
    k = len(candidate.classes)
    if champion is not None and champion.classes != candidate.classes:
        champion_note = (
            f"champion classes {list(champion.classes)} differ from the candidate's "
            f"{list(candidate.classes)}; compared on absolute thresholds only"
        )
        champion = None
    else:
        champion_note = "" if champion is not None else "no champion: absolute thresholds only"
    labels_by_time = labels_at(candles, rule)
    stamps = _common(labels_by_time, candidate, champion)
    y = np.array([labels_by_time[int(t)] for t in stamps], dtype=np.int64)
    # Labels index the rule's classes, the scores' columns the bundle's class order: match by
    # name, so a model whose columns are swapped is judged by what its columns say.
    column = {name: i for i, name in enumerate(candidate.classes)}
    y = np.array([column.get(c, -1) for c in rule.classes], dtype=np.int64)[y]
    stamps, y = stamps[y >= 0], y[y >= 0]
    enough = y.size >= min_rows
    note = "" if enough else f"only {y.size} labelled bars in common (need {min_rows})"
    mine = classification_metrics(_at(candidate, stamps), y) if enough else {}
    uniform_log_loss = math.log(k)
    uniform_brier = (k - 1) / k
    checks: list[Check] = [
        check("accuracy", mine.get("accuracy"), ">=", policy.min_accuracy, "accuracy", note=note),
        check(
            "balanced_accuracy",
            mine.get("balanced_accuracy"),
            ">=",
            1 / k + policy.min_balanced_accuracy_lift,
            f"balanced accuracy (chance is {1 / k:.3g})",
            note=note,
        ),
        check(
            "log_loss",
            mine.get("log_loss"),
            "<=",
            policy.max_log_loss_ratio * uniform_log_loss,
            f"log loss (a uniform guess scores {uniform_log_loss:.4g})",
            note=note,
        ),
        check(
            "brier",
            mine.get("brier"),
            "<=",
            policy.max_brier_ratio * uniform_brier,
            f"Brier score (a uniform guess scores {uniform_brier:.4g})",
            note=note,
        ),
    ]
    theirs: dict[str, float] = {}
    if champion is not None:
        theirs = classification_metrics(_at(champion, stamps), y) if enough else {}
        for name, tolerance, higher_is_better in (
            ("accuracy", policy.accuracy_tolerance, True),
            ("balanced_accuracy", policy.balanced_accuracy_tolerance, True),
            ("log_loss", policy.log_loss_tolerance, False),
            ("brier", policy.brier_tolerance, False),
        ):
            a, b = mine.get(name), theirs.get(name)
            delta = None if a is None or b is None else (a - b if higher_is_better else b - a)
            checks.append(
                check(
                    f"{name}_vs_champion",
                    delta,
                    ">=",
                    -tolerance,
                    f"{name} minus the champion's ({'higher' if higher_is_better else 'lower'} "
                    f"is better; champion {'n/a' if b is None else f'{b:.4g}'})",
                    note=note,
                )
            )
    else:
        checks.append(info("champion", None, champion_note))
    summary = f"{int(y.size)} labelled bars; " + (
        "compared with the champion" if champion is not None else champion_note
    )
    return GateOutcome.of(
        "validation",
        checks,
        summary=summary,
        data={"candidate": mine, "champion": theirs, "has_champion": champion is not None},
    )
