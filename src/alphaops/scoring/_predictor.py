"""Score a verified registry bundle on candles: the path gates, backtests and replay take.

:class:`BundlePredictor` builds the bundle's inputs with its
:class:`~alphaops.scoring.InputContract` (tabular models see bar ``t``, sequence models the
``lookback`` bars ending at ``t``, never across a gap), runs them through one
:class:`~alphaops.inference.OnnxSession`, and returns :class:`Scores`: timestamps, class
probabilities in the bundle's class order, predicted classes, confidences and trading actions.
The actions follow the bundle's :class:`~alphaops.scoring.DecisionRule` (recorded in its
manifest by training; plain argmax for bundles without one), so the backtest gate, replay and
the scoreboard judge the positions a bot would take. The live runtime builds its inputs
through the same contract and session, and applies the same rule, bar by bar.

>>> import numpy as np
>>> scores = Scores(np.array([0, 3_600_000]), np.array([[0.2, 0.5, 0.3], [0.7, 0.2, 0.1]],
...     dtype=np.float32), ("SELL", "HOLD", "BUY"))
>>> scores.predicted.tolist(), scores.actions.tolist(), scores.action_names
([1, 0], [0, -1], ('HOLD', 'SELL'))
>>> [round(float(c), 2) for c in scores.confidence]
[0.5, 0.7]
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from alphaops.core.errors import SpecError
from alphaops.data.candles import Candles
from alphaops.datasets.windows import SequenceWindows
from alphaops.features import LabelRule
from alphaops.inference import ACTION_OF_CLASS, ACTIONS, BATCH_ROWS
from alphaops.registry import Bundle, Manifest, ModelRef, Registry
from alphaops.registry.bundle import open_session
from alphaops.scoring._contract import FeatureSource, InputContract
from alphaops.scoring._decision import ARGMAX, DecisionRule, decide

__all__ = ["BundlePredictor", "Scores", "decision_rule_of", "label_rule_of"]


@dataclass(frozen=True, eq=False)
class Scores:
    """Probabilities of one model on a run of bars, with the bars' open times (ms, UTC).

    ``decision`` turns the probabilities into :attr:`actions` (``None``: plain argmax). The
    bars are one path, oldest first: a rule with a holding period carries it from bar to bar,
    so :meth:`select` and :meth:`since` decide their bars afresh, from flat.
    """

    timestamps_ms: npt.NDArray[np.int64]
    probabilities: npt.NDArray[np.float32]
    classes: tuple[str, ...]
    decision: DecisionRule | None = None

    def __len__(self) -> int:
        return int(self.timestamps_ms.size)

    @property
    def predicted(self) -> npt.NDArray[np.int64]:
        """Return the index of the most probable class per bar."""
        return np.asarray(np.argmax(self.probabilities, axis=1), dtype=np.int64)

    @property
    def confidence(self) -> npt.NDArray[np.float64]:
        """Return the probability of the predicted class per bar."""
        return np.asarray(np.max(self.probabilities, axis=1), dtype=np.float64)

    @cached_property
    def actions(self) -> npt.NDArray[np.int8]:
        """Return the position per bar under the decision rule: -1 short, 0 flat, +1 long."""
        return decide(self.probabilities, self.classes, self.decision or ARGMAX)

    @property
    def predicted_actions(self) -> npt.NDArray[np.int8]:
        """Return the action of the most probable class per bar (argmax, no decision rule)."""
        lookup = np.array([ACTION_OF_CLASS[c] for c in self.classes], dtype=np.int8)
        return lookup[self.predicted]

    @property
    def action_names(self) -> tuple[str, ...]:
        """Return the action name per bar (``SELL``, ``HOLD`` or ``BUY``)."""
        return tuple(ACTIONS[int(a) + 1] for a in self.actions)

    def select(self, mask: npt.NDArray[np.bool_]) -> Scores:
        """Return the bars where ``mask`` is true."""
        return Scores(
            self.timestamps_ms[mask], self.probabilities[mask], self.classes, self.decision
        )

    def since(self, start_ms: int | None) -> Scores:
        """Return the bars opening at or after ``start_ms`` (all when ``None``)."""
        return self if start_ms is None else self.select(self.timestamps_ms >= start_ms)

    def with_decision(self, rule: DecisionRule | None) -> Scores:
        """Return the same bars decided by ``rule`` (``None``: plain argmax)."""
        return replace(self, decision=rule)


def label_rule_of(manifest: Manifest) -> LabelRule:
    """Rebuild the :class:`LabelRule` a bundle was trained with from its manifest."""
    label = manifest.label
    # A manifest without "scale" predates volatility-scaled rules: the rule reads as fixed.
    extra: dict[str, Any] = {
        k: label.params[k] for k in ("price", "scale", "volatility_window") if k in label.params
    }
    try:
        return LabelRule.from_dict(
            {
                "kind": label.rule,
                "horizon": label.horizon,
                "threshold": (
                    float(label.threshold) if label.threshold is not None else float("nan")
                ),
                **extra,
            }
        )
    except (ValidationError, SpecError) as exc:
        raise SpecError(
            f"{manifest.symbol}/{manifest.model_type}: manifest label {label.model_dump()} "
            f"is not a label rule alphaops can rebuild ({exc})",
            fix="re-train the model with a binary or ternary label rule",
        ) from exc


def decision_rule_of(manifest: Manifest) -> DecisionRule:
    """Return the :class:`DecisionRule` a bundle trades with (argmax when it records none)."""
    if manifest.decision is None:
        return ARGMAX
    where = f"{manifest.symbol}/{manifest.model_type}"
    try:
        rule = DecisionRule.from_dict(manifest.decision)
    except SpecError as exc:
        raise SpecError(
            f"{where}: manifest decision {manifest.decision} is not a decision rule alphaops "
            f"can use ({exc.message})",
            fix="re-train the model (training records a valid rule)",
        ) from exc
    rule.check_usable(where)
    return rule


class BundlePredictor:
    """Score a verified bundle from candles through its input contract and one ONNX session.

    ``features`` replaces the bundle's own feature computation (a seam for tests and audits);
    by default the bundle's recorded feature spec is used. The scores' actions follow the
    bundle's decision rule (:func:`decision_rule_of`).
    """

    def __init__(
        self, bundle: Bundle, *, features: FeatureSource | None = None, threads: int = 1
    ) -> None:
        self.bundle = bundle
        self.manifest = bundle.manifest
        self.classes = tuple(self.manifest.label.class_order)
        unknown = [c for c in self.classes if c not in ACTION_OF_CLASS]
        if unknown:
            raise SpecError(
                f"{self.name}: classes {unknown} have no trading action",
                fix=f"train with class names among {sorted(ACTION_OF_CLASS)}",
            )
        self.decision = decision_rule_of(self.manifest)
        self.contract = InputContract.from_bundle(
            bundle, features=features, where=self.name, require_spec=True
        )
        self.lookback = self.contract.lookback
        self.timeframe = self.contract.timeframe
        self._session = open_session(
            self.manifest,
            (bundle.path / "model.onnx").read_bytes(),
            where=self.name,
            threads=threads,
        )

    @classmethod
    def from_registry(cls, registry: Registry, ref: str | ModelRef) -> BundlePredictor:
        """Load and verify the bundle ``ref`` names, and return its predictor."""
        return cls(registry.load(ref))

    @property
    def name(self) -> str:
        """Return ``SYMBOL/TYPE`` of the bundle."""
        return f"{self.manifest.symbol}/{self.manifest.model_type}"

    @property
    def warmup_bars(self) -> int:
        """Return the bars of history needed before the first scored bar."""
        return self.contract.warmup_bars

    def features(self, candles: Candles) -> npt.NDArray[np.float64]:
        """Return the ``(n, F)`` feature rows of ``candles`` in model input order."""
        return self.contract.features(candles)

    def score(self, candles: Candles, *, start_ms: int | None = None) -> Scores:
        """Return the scores of every bar of ``candles`` with complete inputs.

        Bars inside the feature warm-up, or whose window crosses a gap, are skipped.
        ``start_ms`` keeps only bars opening at or after it (earlier bars still warm up).
        """
        stamps, inputs = self.contract.history(candles, start_ms=start_ms)
        if len(stamps) == 0:
            return self._empty()
        return Scores(stamps, self._run(inputs), self.classes, self.decision)

    def predict_proba(self, inputs: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Return the model's class probabilities for a batch of model inputs."""
        return self._run(np.asarray(inputs))

    def _run(self, inputs: Any) -> npt.NDArray[np.float32]:
        n = len(inputs)
        parts: list[npt.NDArray[np.float32]] = []
        for i in range(0, n, BATCH_ROWS):
            index = np.arange(i, min(i + BATCH_ROWS, n))
            batch = inputs.batch(index) if isinstance(inputs, SequenceWindows) else inputs[index]
            parts.append(self._session.run(np.ascontiguousarray(batch, dtype=self.contract.dtype)))
        return np.concatenate(parts)

    def _empty(self) -> Scores:
        return Scores(
            np.zeros(0, np.int64),
            np.zeros((0, len(self.classes)), np.float32),
            self.classes,
            self.decision,
        )

    def __repr__(self) -> str:
        return f"BundlePredictor({self.name}, {len(self.classes)} classes, {self.bundle.path})"
