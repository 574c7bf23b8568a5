"""One scoring path: a verified registry bundle's ``model.onnx`` scored from candles.

:class:`BundlePredictor` computes the bundle's features from candles with the same
:class:`~alphaops.features.FeaturePipeline` as training (tabular models see bar ``t``, sequence
models the ``lookback`` bars ending at ``t``, never across a gap), runs them through one
onnxruntime session, and returns :class:`Scores`: timestamps, class probabilities in the
bundle's class order, predicted classes, confidences and trading actions. Gates, backtests,
replay and the live runtime all score through it, so what was gated is exactly what trades.

This module depends only on ``core``, ``data``, ``features``, ``datasets`` and ``registry``,
so the live runtime scores exactly like the gates without importing them.

Classes map to actions: ``SELL`` → -1, ``HOLD`` → 0, ``BUY`` → +1; for binary models
``LOSS`` → 0 (stay flat) and ``WIN`` → +1.

>>> import numpy as np
>>> scores = Scores(np.array([0, 3_600_000]), np.array([[0.2, 0.5, 0.3], [0.7, 0.2, 0.1]],
...     dtype=np.float32), ("SELL", "HOLD", "BUY"))
>>> scores.predicted.tolist(), scores.actions.tolist(), scores.action_names
([1, 0], [0, -1], ('HOLD', 'SELL'))
>>> [round(float(c), 2) for c in scores.confidence]
[0.5, 0.7]
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pandas as pd
from pydantic import ValidationError

from alphaops.core.errors import InsufficientDataError, IntegrityError, SpecError, UsageError
from alphaops.core.timeframes import Timeframe
from alphaops.data.candles import Candles
from alphaops.datasets.windows import SequenceWindows, segment_ids
from alphaops.features import FeaturePipeline, FeatureSpec, LabelRule
from alphaops.registry import Bundle, Manifest, ModelRef, Registry

__all__ = [
    "ACTIONS",
    "ACTION_OF_CLASS",
    "TRAINING_REPORT",
    "BundlePredictor",
    "FeatureSource",
    "Scores",
    "feature_spec_of",
    "label_rule_of",
]

ACTIONS = ("SELL", "HOLD", "BUY")
"""Action names; an action value ``a`` in -1, 0, +1 is named ``ACTIONS[a + 1]``."""
ACTION_OF_CLASS = {"SELL": -1, "HOLD": 0, "BUY": 1, "LOSS": 0, "WIN": 1}
"""The trading action of each class name a label rule can produce."""
TRAINING_REPORT = "reports/training.json"
"""The bundle file whose ``job.features`` holds the feature spec the model was trained on."""

_BATCH = 4096


class FeatureSource(Protocol):
    """What the predictor needs to compute features: a :class:`FeaturePipeline` satisfies it."""

    @property
    def names(self) -> tuple[str, ...]:
        """Return the feature column names in model input order."""
        ...

    @property
    def warmup_bars(self) -> int:
        """Return the bars needed before the first complete feature row."""
        ...

    def transform(self, candles: Candles) -> pd.DataFrame:
        """Return ``timestamp`` plus one column per feature, one row per candle."""
        ...


@dataclass(frozen=True, eq=False)
class Scores:
    """Probabilities of one model on a run of bars, with the bars' open times (ms, UTC)."""

    timestamps_ms: npt.NDArray[np.int64]
    probabilities: npt.NDArray[np.float32]
    classes: tuple[str, ...]

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

    @property
    def actions(self) -> npt.NDArray[np.int8]:
        """Return the trading action per bar: -1 sell, 0 hold/flat, +1 buy."""
        lookup = np.array([ACTION_OF_CLASS[c] for c in self.classes], dtype=np.int8)
        return lookup[self.predicted]

    @property
    def action_names(self) -> tuple[str, ...]:
        """Return the action name per bar (``SELL``, ``HOLD`` or ``BUY``)."""
        return tuple(ACTIONS[int(a) + 1] for a in self.actions)

    def select(self, mask: npt.NDArray[np.bool_]) -> Scores:
        """Return the bars where ``mask`` is true."""
        return Scores(self.timestamps_ms[mask], self.probabilities[mask], self.classes)

    def since(self, start_ms: int | None) -> Scores:
        """Return the bars opening at or after ``start_ms`` (all when ``None``)."""
        return self if start_ms is None else self.select(self.timestamps_ms >= start_ms)


def label_rule_of(manifest: Manifest) -> LabelRule:
    """Rebuild the :class:`LabelRule` a bundle was trained with from its manifest."""
    label = manifest.label
    price = label.params.get("price", "close")
    try:
        return LabelRule(
            kind=label.rule,
            horizon=label.horizon,
            threshold=float(label.threshold) if label.threshold is not None else float("nan"),
            price=price,
        )
    except (ValidationError, SpecError) as exc:
        raise SpecError(
            f"{manifest.symbol}/{manifest.model_type}: manifest label {label.model_dump()} "
            f"is not a label rule alphaops can rebuild ({exc})",
            fix="re-train the model with a binary or ternary label rule",
        ) from exc


def feature_spec_of(bundle: Bundle) -> FeatureSpec:
    """Return the feature spec of ``bundle``, checked against its manifest.

    The spec is read from ``reports/training.json`` (``job.features``, written by the
    trainer). Its names must equal the manifest's features in order, and its hash must equal
    ``params.feature_spec_hash`` when the manifest records one.
    """
    where = f"{bundle.manifest.symbol}/{bundle.manifest.model_type} ({bundle.path})"
    path = bundle.path / TRAINING_REPORT
    if not path.is_file():
        raise IntegrityError(
            f"{where} has no {TRAINING_REPORT}, so its feature spec is unknown",
            fix="re-publish the model with the alphaops trainer (it writes the feature spec)",
            file=TRAINING_REPORT,
        )
    try:
        job = json.loads(path.read_text(encoding="utf-8"))["job"]
        spec = FeatureSpec.from_dict(job["features"])
    except (KeyError, TypeError, ValueError, SpecError) as exc:
        raise IntegrityError(
            f"{where}: {TRAINING_REPORT} holds no valid job.features ({exc})",
            fix="re-publish the model with the alphaops trainer",
            file=TRAINING_REPORT,
        ) from exc
    listed = tuple(f.name for f in bundle.manifest.features)
    if spec.names != listed:
        raise IntegrityError(
            f"{where}: the feature spec names {list(spec.names)} but the manifest lists "
            f"{list(listed)}",
            fix="re-publish the model; its report and manifest disagree",
            file=TRAINING_REPORT,
        )
    recorded = bundle.manifest.params.get("feature_spec_hash")
    if recorded is not None and recorded != spec.spec_hash:
        raise IntegrityError(
            f"{where}: feature spec hash {spec.spec_hash[:12]}… differs from the manifest's "
            f"{str(recorded)[:12]}… (the feature code changed since training)",
            fix="re-train the model with the current feature code",
            file=TRAINING_REPORT,
        )
    return spec


class BundlePredictor:
    """Score a verified bundle from candles through one onnxruntime session.

    ``features`` replaces the bundle's own feature pipeline (a seam for tests and audits);
    by default it is rebuilt from the bundle with :func:`feature_spec_of`.
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
        self.pipeline: FeatureSource = features or FeaturePipeline(feature_spec_of(bundle))
        self.lookback = getattr(self.manifest.input, "lookback", 1)
        self.timeframe = Timeframe.parse(self.manifest.data.timeframe)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        model = (bundle.path / "model.onnx").read_bytes()
        self._session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self._input = self.manifest.input.name
        self._dtype = np.dtype(self.manifest.input.dtype)

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
        return int(self.pipeline.warmup_bars) + int(self.lookback) - 1

    def features(self, candles: Candles) -> npt.NDArray[np.float64]:
        """Return the ``(n, F)`` feature rows of ``candles`` in model input order."""
        if candles.timeframe != self.timeframe:
            raise UsageError(
                f"{self.name} was trained on {self.timeframe} candles, got {candles.timeframe}",
                fix=f"pass {self.timeframe} candles of {self.manifest.symbol}",
            )
        frame = self.pipeline.transform(candles)
        return frame[list(self.pipeline.names)].to_numpy(np.float64)

    def score(self, candles: Candles, *, start_ms: int | None = None) -> Scores:
        """Return the scores of every bar of ``candles`` with complete inputs.

        Bars inside the feature warm-up, or whose window crosses a gap, are skipped.
        ``start_ms`` keeps only bars opening at or after it (earlier bars still warm up).
        """
        rows = self.features(candles)
        stamps = candles.timestamps_ms
        if self.manifest.input.kind == "sequence":
            try:
                windows = SequenceWindows.build(
                    rows,
                    lookback=self.lookback,
                    segments=segment_ids(stamps, self.timeframe),
                )
            except InsufficientDataError:  # no complete window at all: nothing to score
                return self._empty()
            keep = windows.ends
            inputs: Any = windows
        else:
            keep = np.flatnonzero(np.isfinite(rows).all(axis=1))
            inputs = rows[keep]
        if start_ms is not None:
            chosen = stamps[keep] >= start_ms
            keep = keep[chosen]
            inputs = (
                SequenceWindows(windows.features, keep, self.lookback)
                if self.manifest.input.kind == "sequence"
                else inputs[chosen]
            )
        if keep.size == 0:
            return self._empty()
        return Scores(stamps[keep].astype(np.int64), self._run(inputs), self.classes)

    def predict_proba(self, inputs: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Return the model's class probabilities for a batch of model inputs."""
        return self._run(np.asarray(inputs))

    def _run(self, inputs: Any) -> npt.NDArray[np.float32]:
        n = len(inputs)
        parts: list[npt.NDArray[np.float32]] = []
        for i in range(0, n, _BATCH):
            index = np.arange(i, min(i + _BATCH, n))
            batch = inputs.batch(index) if isinstance(inputs, SequenceWindows) else inputs[index]
            feed = {self._input: np.ascontiguousarray(batch, dtype=self._dtype)}
            out = np.asarray(self._session.run(None, feed)[0], dtype=np.float32)
            if out.ndim != 2 or out.shape[1] != len(self.classes):
                raise IntegrityError(
                    f"{self.name}: model.onnx returned shape {list(out.shape)}, expected "
                    f"[batch, {len(self.classes)}] for classes {list(self.classes)}",
                    fix="re-export the model with one probability output per class",
                    file="model.onnx",
                )
            parts.append(out)
        return np.concatenate(parts)

    def _empty(self) -> Scores:
        return Scores(
            np.zeros(0, np.int64), np.zeros((0, len(self.classes)), np.float32), self.classes
        )

    def __repr__(self) -> str:
        return f"BundlePredictor({self.name}, {len(self.classes)} classes, {self.bundle.path})"
