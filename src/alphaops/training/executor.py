"""Run one training job: data → fit → ONNX export → parity → bundle contents.

Besides the model, a bundle carries ``reports/training.json`` (job, metrics, history) and
``reports/drift_reference.json``: the :class:`~alphaops.scoring.ReferenceProfile` of the
validation window (features of each decided bar, ONNX probabilities) for drift monitoring.
The manifest records the job's :class:`~alphaops.scoring.DecisionRule` with its typical move
(the mean absolute forward return over the label horizon on the training rows only), so that
every scoring path turns probabilities into the same positions.

:func:`train_job` returns a :class:`TrainedBundle` (plain bytes and arrays, so it crosses
process and Ray boundaries); :func:`write_trained_bundle` writes it as a registry bundle and
:func:`publish_trained` publishes it as a new candidate version. A job that is cancelled or
fails publishes nothing. :func:`train_job_async` runs the CPU-bound work in a worker thread
so that an event loop stays responsive, and cancels the job when its task is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.metadata
import json
import platform
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx

from alphaops._version import __version__
from alphaops.core.errors import TrainingError
from alphaops.data.candles import Candles
from alphaops.datasets import SequenceWindows
from alphaops.registry import Bundle, ModelVersion, Registry, write_bundle
from alphaops.scoring import ACTION_OF_CLASS, PROFILE_REPORT, DecisionRule, build_profile
from alphaops.training._control import CancelToken, ProgressCallback
from alphaops.training.data import PreparedData, prepare_data
from alphaops.training.job import TrainingJob
from alphaops.training.onnx_export import OnnxScorer, check_parity

__all__ = [
    "TrainedBundle",
    "code_version",
    "decision_rule_for",
    "publish_trained",
    "train_job",
    "train_job_async",
    "validation_metrics",
    "write_trained_bundle",
]

_SCORE_BATCH = 2048


@dataclass(frozen=True, eq=False)
class TrainedBundle:
    """A trained, exported and parity-checked model, ready to be written as a bundle."""

    job: TrainingJob
    model_onnx: bytes
    native: dict[str, bytes]
    reference_inputs: npt.NDArray[np.float32]
    reference_expected: npt.NDArray[np.float32]
    manifest: dict[str, Any]
    reports: dict[str, bytes]
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def symbol(self) -> str:
        """Return the registry symbol."""
        return self.job.registry_symbol


def train_job(
    job: TrainingJob,
    candles: Mapping[str, Candles],
    *,
    callbacks: Sequence[ProgressCallback] = (),
    cancel: CancelToken | None = None,
) -> TrainedBundle:
    """Train ``job`` on ``candles`` and return the exported, parity-checked bundle contents.

    ``callbacks`` get ``(epoch, total_epochs, metrics)`` unchanged from the model; ``cancel``
    is checked every batch, boosting round or chunk of trees, and before each later stage.
    Raise :class:`~alphaops.core.errors.ParityError` when ONNX and native probabilities
    differ by more than ``job.parity_tolerance``.
    """
    token = cancel or CancelToken()
    token.raise_if_cancelled("start")
    data = prepare_data(job, candles)
    token.raise_if_cancelled("data preparation")
    history: list[dict[str, float]] = []

    def record(epoch: int, total: int, metrics: Mapping[str, float]) -> None:
        history.append({"epoch": float(epoch), **metrics})

    model = job.build_model()
    started = time.perf_counter()
    model.fit(
        data.X_train,
        data.y_train,
        X_val=data.X_val,
        y_val=data.y_val,
        callbacks=[record, *callbacks],
        cancel=token,
    )
    fit_seconds = time.perf_counter() - started
    token.raise_if_cancelled("export")
    model_onnx = model.to_onnx()
    token.raise_if_cancelled("parity check")
    scorer = OnnxScorer(model_onnx)
    native = model.predict_proba(data.X_val)
    scored = _score(scorer, data.X_val)
    parity = check_parity(native, scored, tolerance=job.parity_tolerance, family=job.model)
    metrics = validation_metrics(scored, data.y_val, len(data.classes))
    metrics |= {
        "onnx_parity_max_abs_diff": parity.max_abs_diff,
        "train_rows": float(data.y_train.size),
        "fit_seconds": fit_seconds,
    }
    for name in ("best_iteration_", "best_epoch_"):
        if hasattr(model, name):
            metrics[name.rstrip("_")] = float(getattr(model, name))
    reference = data.reference_inputs()
    profile = build_profile(
        _decided_rows(data.X_val),
        data.feature_names,
        scored,
        data.classes,
        window_start_ms=data.val_start_ms,
        window_end_ms=data.val_end_ms,
    )
    token.raise_if_cancelled("bundle")
    versions = _library_versions() | model.library_versions()
    decision = decision_rule_for(job, data)
    manifest = _manifest(job, data, model.get_params(), metrics, versions, decision)
    report = {
        "job": job.to_dict(),
        "config_hash": job.config_hash,
        "feature_spec_hash": job.features.spec_hash,
        "label_rule_hash": job.label.rule_hash,
        "metrics": metrics,
        "history": history,
        "purged_samples": data.purged,
        "decision": decision.to_dict(),
        "decision_description": decision.describe(),
    }
    return TrainedBundle(
        job=job,
        model_onnx=model_onnx,
        native=model.native_files(),
        reference_inputs=reference,
        reference_expected=scorer.predict_proba(reference),
        manifest=manifest,
        # write_bundle stores each report as reports/<name>, listed with its sha256.
        reports={
            "training.json": json.dumps(report, indent=2, sort_keys=True).encode(),
            PROFILE_REPORT.removeprefix("reports/"): profile.to_json(),
        },
        metrics=metrics,
        history=history,
    )


def decision_rule_for(job: TrainingJob, data: PreparedData) -> DecisionRule:
    """Return the job's decision rule with the typical move measured on the training rows.

    The typical move is the mean absolute forward return over the label horizon of the
    training samples labelled with a trading class (BUY or SELL; WIN for binary rules):
    the move a BUY or SELL stands for, so that ``(p_BUY - p_SELL) x typical_move``
    estimates the expected return of a bar (HOLD rows move about nothing). Over all rows,
    HOLD included, the mean is about a third of that on 1h BTC (63 vs 190 bps at a 1%
    threshold) and an edge check against it never lets a default-trained model trade.
    Validation rows never contribute.
    """
    rule = job.decision_rule
    forward = data.train_forward_returns
    if forward is None:
        return rule
    trading = np.array([ACTION_OF_CLASS.get(c, 0) != 0 for c in data.classes])
    chosen = forward[trading[data.y_train] & np.isfinite(forward)]
    move = float(np.abs(chosen).mean()) if chosen.size else float("nan")
    if not 0 < move < 1:
        if rule.min_edge_over_cost == 0:
            return rule
        raise TrainingError(
            f"the typical move of {job.registry_symbol} over {job.label.horizon} bars cannot "
            f"be measured: {chosen.size} training rows carry a trading class (mean |return| "
            f"{move:g})",
            fix="use more history, or train with decision.min_edge_over_cost=0",
        )
    return rule.with_typical_move(move)


def validation_metrics(
    probabilities: npt.NDArray[np.float32], labels: npt.ArrayLike, n_classes: int
) -> dict[str, float]:
    """Return log loss, accuracy, balanced accuracy and the majority-class baseline.

    >>> p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], dtype=np.float32)
    >>> m = validation_metrics(p, [0, 1, 1], 2)
    >>> round(m["val_loss"], 4), round(m["val_accuracy"], 4), m["val_balanced_accuracy"]
    (0.4149, 0.6667, 0.75)
    """
    y = np.asarray(labels, dtype=np.int64)
    p = np.clip(probabilities.astype(np.float64), 1e-12, 1.0)
    predicted = np.argmax(p, axis=1)
    recalls = [float((predicted[y == k] == k).mean()) for k in range(n_classes) if (y == k).any()]
    counts = np.bincount(y, minlength=n_classes)
    return {
        "val_loss": float(-np.log(p[np.arange(y.size), y]).mean()),
        "val_accuracy": float((predicted == y).mean()),
        "val_balanced_accuracy": float(np.mean(recalls)),
        "val_majority_accuracy": float(counts.max() / y.size),
        "val_rows": float(y.size),
    }


def write_trained_bundle(trained: TrainedBundle, folder: Path) -> Bundle:
    """Write ``trained`` as a verified bundle in the new folder ``folder``."""
    return write_bundle(
        folder,
        model_onnx=trained.model_onnx,
        reference_inputs=trained.reference_inputs,
        reference_expected=trained.reference_expected,
        manifest=trained.manifest,
        native=trained.native,
        reports=trained.reports,
    )


def publish_trained(trained: TrainedBundle, registry: Registry) -> ModelVersion:
    """Write ``trained`` to a temporary bundle and publish it as the next candidate version.

    Never moves an alias: the version stays a candidate until someone promotes it.
    """
    with tempfile.TemporaryDirectory(prefix="alphaops-train-") as tmp:
        bundle = write_trained_bundle(trained, Path(tmp) / "bundle")
        return registry.publish(bundle)


async def train_job_async(
    job: TrainingJob,
    candles: Mapping[str, Candles],
    *,
    callbacks: Sequence[ProgressCallback] = (),
    cancel: CancelToken | None = None,
) -> TrainedBundle:
    """Run :func:`train_job` in a worker thread; cancelling the task cancels the job.

    Callbacks run in the worker thread: to touch loop objects from them, use
    ``loop.call_soon_threadsafe``. On cancellation the coroutine waits for the job to stop
    (at its next check), then raises :class:`asyncio.CancelledError`.
    """
    token = cancel or CancelToken()
    loop = asyncio.get_running_loop()
    work = functools.partial(train_job, job, candles, callbacks=callbacks, cancel=token)
    future = loop.run_in_executor(None, work)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        token.cancel()
        with contextlib.suppress(Exception):
            await future
        raise


def _score(scorer: OnnxScorer, X: Any) -> npt.NDArray[np.float32]:
    if not isinstance(X, SequenceWindows):
        return scorer.predict_proba(X)
    parts = [
        scorer.predict_proba(X.batch(np.arange(i, min(i + _SCORE_BATCH, len(X)))))
        for i in range(0, len(X), _SCORE_BATCH)
    ]
    return np.concatenate(parts)


def _decided_rows(X: Any) -> npt.NDArray[np.float32]:
    # The features of the bar each input decides: a sequence window's last step.
    if isinstance(X, SequenceWindows):
        return X.features[X.ends]
    return np.asarray(X, dtype=np.float32)


def _manifest(
    job: TrainingJob,
    data: PreparedData,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    versions: Mapping[str, str],
    decision: DecisionRule,
) -> dict[str, Any]:
    n_features = len(data.feature_names)
    model_input: dict[str, Any] = (
        {"kind": "tabular", "n_features": n_features}
        if data.lookback is None
        else {"kind": "sequence", "lookback": data.lookback, "n_features": n_features}
    )
    all_params: dict[str, Any] = dict(params) | {
        "feature_spec_hash": job.features.spec_hash,
        "label_rule_hash": job.label.rule_hash,
        "split_validation_fraction": job.split.validation_fraction,
        "split_embargo_bars": job.split.embargo_bars,
        "parity_tolerance": job.parity_tolerance,
        "symbols": ",".join(job.symbols),
    }
    if data.lookback is not None:
        all_params["lookback"] = data.lookback
    return {
        "symbol": job.registry_symbol,
        "model_type": job.model,
        "features": [{"name": name, "dtype": "float32"} for name in data.feature_names],
        "input": model_input,
        "label": {
            "rule": job.label.kind,
            "horizon": job.label.horizon,
            "threshold": job.label.threshold,
            # Every rule field but the three above (price; scale and window when not fixed).
            "params": {
                k: v
                for k, v in job.label.to_dict().items()
                if k not in ("kind", "horizon", "threshold")
            },
            "class_order": list(data.classes),
        },
        "data": {
            "start": data.start.isoformat(),
            "end": data.end.isoformat(),
            "timeframe": job.timeframe,
            "fingerprint": data.fingerprint,
            "rows": data.rows,
            "calendar": data.calendar,
        },
        "seed": job.seed,
        "library_versions": dict(versions),
        "code_version": code_version(),
        "config_hash": job.config_hash,
        "params": all_params,
        "metrics": dict(metrics),
        "feature_spec": job.features.to_dict(),
        "decision": decision.to_dict(),
    }


def _library_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": importlib.metadata.version("onnxruntime"),
    }


@functools.cache
def code_version() -> str:
    """Return the alphaops version, plus the git revision when run from a checkout."""
    here = Path(__file__).resolve().parent
    try:
        revision = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{revision}" if revision else __version__
