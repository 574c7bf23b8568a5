"""The input contract of a bundle: what its model takes, and the only way to build it.

An :class:`InputContract` is read from a bundle's manifest (tabular or sequence, lookback,
feature names, order and dtype, symbol, timeframe, feature spec). Every path that turns market
data into model input goes through it:

* :meth:`~InputContract.history` — every complete, gap-free input of a run of candles (gates,
  backtests, replay);
* :meth:`~InputContract.live` — a :class:`~alphaops.scoring.LiveInput` fed one closed bar at a
  time (the live runtime), equal bit for bit to ``history`` from the same first bar;
* :meth:`~InputContract.latest` — the input of the newest bar of a window (one-shot);
* :meth:`~InputContract.rows` — ready feature rows, validated.

Wrong symbol or timeframe, a gap inside a sequence window and too little history are refused
here, once, with typed errors that name the value and the fix.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from alphaops.core.errors import (
    DataValidationError,
    InsufficientDataError,
    IntegrityError,
    SpecError,
    UsageError,
    WrongMarketError,
)
from alphaops.core.timeframes import Timeframe
from alphaops.data.calendars import Calendar
from alphaops.data.candles import Candles
from alphaops.datasets.windows import SequenceWindows, segment_ids
from alphaops.features import FeaturePipeline, FeatureSpec
from alphaops.registry import Bundle, Manifest
from alphaops.scoring._live import LiveInput

__all__ = ["TRAINING_REPORT", "FeatureSource", "InputContract", "Rows", "feature_spec_of"]

TRAINING_REPORT = "reports/training.json"
"""Older bundles keep their feature spec here (``job.features``); newer ones in the manifest."""

Rows = npt.NDArray[Any] | Mapping[str, float] | pd.DataFrame
"""Ready feature rows: an array ``(F,)``/``(n, F)`` (tabular) or ``(T, F)``/``(n, T, F)``
(sequence), a ``{name: value}`` mapping for one tabular row, or a frame whose columns are the
feature names in model order."""


class FeatureSource(Protocol):
    """A replacement feature computation (a seam for audits and tests); batch only."""

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


def feature_spec_of(bundle: Bundle) -> FeatureSpec:
    """Return the feature spec of ``bundle``, checked against its manifest.

    Read from the manifest's ``feature_spec`` (or, for bundles published before it existed,
    from ``reports/training.json``). Its names must equal the manifest's features in order,
    and its hash must equal ``params.feature_spec_hash`` when the manifest records one.
    """
    manifest = bundle.manifest
    where = f"{manifest.symbol}/{manifest.model_type} ({bundle.path})"
    source = "manifest.json feature_spec"
    try:
        if manifest.feature_spec is not None:
            spec = FeatureSpec.from_dict(manifest.feature_spec)
        else:
            source = TRAINING_REPORT
            path = bundle.path / TRAINING_REPORT
            if not path.is_file():
                raise IntegrityError(
                    f"{where} has no feature spec (neither in its manifest nor in "
                    f"{TRAINING_REPORT})",
                    fix="re-publish the model with the alphaops trainer (it records the spec)",
                    file=TRAINING_REPORT,
                )
            job = json.loads(path.read_text(encoding="utf-8"))["job"]
            spec = FeatureSpec.from_dict(job["features"])
    except (KeyError, TypeError, ValueError, SpecError) as exc:
        raise IntegrityError(
            f"{where}: {source} holds no valid feature spec ({exc})",
            fix="re-publish the model with the alphaops trainer",
            file=source,
        ) from exc
    listed = tuple(f.name for f in manifest.features)
    if spec.names != listed:
        raise IntegrityError(
            f"{where}: the feature spec names {list(spec.names)} but the manifest lists "
            f"{list(listed)}",
            fix="re-publish the model; its spec and manifest disagree",
            file=source,
        )
    recorded = manifest.params.get("feature_spec_hash")
    if recorded is not None and recorded != spec.spec_hash:
        raise IntegrityError(
            f"{where}: feature spec hash {spec.spec_hash[:12]}… differs from the manifest's "
            f"{str(recorded)[:12]}… (the feature code changed since training)",
            fix="re-train the model with the current feature code",
            file=source,
        )
    return spec


def has_feature_spec(bundle: Bundle) -> bool:
    """Return whether ``bundle`` records a feature spec (else it serves ready rows only)."""
    return bundle.manifest.feature_spec is not None or (bundle.path / TRAINING_REPORT).is_file()


class InputContract:
    """What one bundle's model takes as input, and how to build it from market data."""

    def __init__(
        self,
        manifest: Manifest,
        *,
        spec: FeatureSpec | None,
        features: FeatureSource | None = None,
        where: str | None = None,
    ) -> None:
        self.manifest = manifest
        self.where = where or f"{manifest.symbol}/{manifest.model_type}"
        self.symbol = manifest.symbol
        self.timeframe = Timeframe.parse(manifest.data.timeframe)
        self.calendar = Calendar.parse(manifest.data.calendar)
        """The market's session calendar: a closed session between two bars is no gap."""
        self.kind = manifest.input.kind
        self.lookback = int(getattr(manifest.input, "lookback", 1))
        self.names = tuple(f.name for f in manifest.features)
        self.dtype: np.dtype[Any] = np.dtype(manifest.input.dtype)
        self.shape: tuple[int, ...] = (
            (len(self.names),) if self.kind == "tabular" else (self.lookback, len(self.names))
        )
        self.spec = spec if features is None else None
        if features is not None and tuple(features.names) != self.names:
            raise UsageError(
                f"{self.where} takes features {list(self.names)} but the feature source "
                f"computes {list(features.names)}",
                fix="pass a feature source computing the model's features in its order",
            )
        # The batch pipeline is built on first use: a live runtime never needs it, and a
        # hot-swap should do as little Python as possible beside the predictions.
        self._custom = features
        self._pipeline: FeaturePipeline | None = None
        warmup = features.warmup_bars if features is not None else None
        if warmup is None and spec is not None:
            warmup = spec.warmup_bars
        # Computed once: the live path reads them on every bar.
        self.feature_warmup = 0 if warmup is None else int(warmup)
        self.warmup_bars = self.feature_warmup + self.lookback - 1
        """The bars of history needed for the first input (features + lookback - 1)."""
        identity = self.spec.spec_hash if self.spec is not None else id(self._custom)
        self.key: tuple[Any, ...] = (
            identity,
            self.symbol,
            self.timeframe,
            self.calendar,
            self.kind,
            self.lookback,
            self.dtype,
        )
        """What makes two contracts build identical inputs from the same bars."""

    @classmethod
    def from_bundle(
        cls,
        bundle: Bundle,
        *,
        features: FeatureSource | None = None,
        where: str | None = None,
        require_spec: bool = False,
    ) -> InputContract:
        """Return the contract of ``bundle`` (its feature spec checked, when it has one).

        With ``require_spec`` a bundle that records no feature spec raises
        :class:`IntegrityError` (the gates must compute features); otherwise its contract
        takes ready feature rows only.
        """
        spec = None
        if features is None and (require_spec or has_feature_spec(bundle)):
            spec = feature_spec_of(bundle)
        return cls(bundle.manifest, spec=spec, features=features, where=where)

    def check_market(self, candles: Candles) -> None:
        """Refuse candles of another symbol or timeframe (:class:`WrongMarketError`)."""
        if candles.symbol != self.symbol or candles.timeframe != self.timeframe:
            raise WrongMarketError(
                f"{self.where} was trained on {self.symbol} {self.timeframe} candles, got "
                f"{candles.symbol} {candles.timeframe}",
                fix=f"pass {self.timeframe} candles of {self.symbol}",
                expected=f"{self.symbol} {self.timeframe}",
                got=f"{candles.symbol} {candles.timeframe}",
            )

    def features(self, candles: Candles) -> npt.NDArray[np.float64]:
        """Return the ``(n, F)`` feature rows of ``candles`` in model input order."""
        self.check_market(candles)
        source = self._batch_source()
        if source is None:
            raise UsageError(
                f"{self.where} carries no feature spec, so it cannot compute its features "
                "from candles",
                fix="pass ready feature rows, or re-publish the model with a feature spec",
            )
        frame = source.transform(candles)
        return frame[list(self.names)].to_numpy(np.float64)

    def _batch_source(self) -> FeatureSource | None:
        if self._custom is not None:
            return self._custom
        if self.spec is not None and self._pipeline is None:
            self._pipeline = FeaturePipeline(self.spec)
        return self._pipeline

    def history(
        self, candles: Candles, *, start_ms: int | None = None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[Any] | SequenceWindows]:
        """Return every complete, gap-free input of ``candles`` and its bar's open time.

        Tabular: rows with every feature finite. Sequence: windows of ``lookback`` complete
        rows that never cross a gap. ``start_ms`` keeps inputs of bars opening at or after it
        (earlier bars still warm up). Inputs are ``(n, F)`` arrays or ``SequenceWindows``.
        """
        rows = self.features(candles)
        stamps = candles.timestamps_ms
        if self.kind == "sequence":
            try:
                windows = SequenceWindows.build(
                    rows,
                    lookback=self.lookback,
                    segments=segment_ids(stamps, self.timeframe, calendar=self.calendar),
                )
            except InsufficientDataError:  # no complete window at all
                return np.zeros(0, np.int64), np.zeros((0, *self.shape), self.dtype)
            keep = windows.ends
            if start_ms is not None:
                keep = keep[stamps[keep] >= start_ms]
                windows = SequenceWindows(windows.features, keep, self.lookback)
            return stamps[keep].astype(np.int64), windows
        keep = np.flatnonzero(np.isfinite(rows).all(axis=1))
        if start_ms is not None:
            keep = keep[stamps[keep] >= start_ms]
        return stamps[keep].astype(np.int64), rows[keep]

    def live(self) -> LiveInput:
        """Return a new, empty :class:`LiveInput` of this contract."""
        return LiveInput(self)

    def latest(self, candles: Candles) -> npt.NDArray[Any]:
        """Return the ``(1, …)`` input of the newest bar of ``candles`` (one-shot).

        Equal, bit for bit, to the last input :meth:`history` builds from the same candles.
        """
        self.check_market(candles)
        if len(candles) < self.warmup_bars:
            raise InsufficientDataError(
                f"{self.where} needs the last {self.warmup_bars} candles ({self.feature_warmup} "
                f"bars of feature warm-up + lookback {self.lookback} - 1), got {len(candles)}",
                fix=f"keep at least {self.warmup_bars} recent candles before predicting",
                needed=self.warmup_bars,
                given=len(candles),
            )
        if self.spec is None:  # a batch-only feature source
            rows = self.features(candles)[-self.lookback :]
            return self.rows(rows[0] if self.kind == "tabular" else rows)
        live = self.live()
        live.extend(candles)
        return live.batch()

    def rows(self, rows: Rows) -> npt.NDArray[Any]:
        """Validate ready feature rows (names, order, shape, dtype, finiteness); return a batch."""
        if isinstance(rows, np.ndarray):
            array = rows
        elif isinstance(rows, pd.DataFrame):
            columns = tuple(str(c) for c in rows.columns)
            if columns != self.names:
                raise DataValidationError(
                    f"feature columns {list(columns)} differ from {self.where}'s inputs "
                    f"{list(self.names)} (names and order must match)",
                    fix="select the columns in the model's order: frame[list(names)]",
                )
            array = rows.to_numpy()
        elif isinstance(rows, Mapping):
            missing = [n for n in self.names if n not in rows]
            extra = [n for n in rows if n not in self.names]
            if missing or extra:
                raise DataValidationError(
                    f"feature names differ from {self.where}'s inputs: missing {missing}, "
                    f"unexpected {extra}",
                    fix=f"pass exactly {list(self.names)}",
                )
            array = np.array([[rows[n] for n in self.names]])
        else:
            raise UsageError(
                f"cannot predict from {type(rows).__name__}",
                fix="pass a NumPy array, a {name: value} mapping, a DataFrame, bars or Candles",
            )
        if array.dtype.kind not in "fiu":
            raise DataValidationError(
                f"feature rows have dtype {array.dtype}, expected numbers",
                fix="convert the features to float32 or float64",
            )
        if array.shape == self.shape:
            array = array[np.newaxis]
        if array.shape[1:] != self.shape:
            raise DataValidationError(
                f"feature rows have shape {list(array.shape)}, {self.where} expects "
                f"{list(self.shape)} per row ({self.kind}, features {list(self.names)})",
                fix=f"pass rows of shape {list(self.shape)} or a batch [n, *{list(self.shape)}]",
            )
        return self.finish(array)

    def finish(self, array: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Return ``array`` as a contiguous batch of the model's dtype, refusing NaN/inf."""
        batch = np.ascontiguousarray(array, dtype=self.dtype)
        if not np.isfinite(batch).all():
            bad = sorted({self.names[int(i)] for i in np.argwhere(~np.isfinite(batch))[:, -1]})
            raise DataValidationError(
                f"feature rows hold NaN or infinite values in {bad}",
                fix="wait for the features to warm up, or repair the input candles",
            )
        return batch

    def __repr__(self) -> str:
        return (
            f"InputContract({self.where}, {self.kind} {list(self.shape)}, "
            f"{self.symbol} {self.timeframe})"
        )
