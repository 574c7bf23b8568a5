"""One verified, ready-to-serve model version: an onnxruntime session plus what it needs.

Everything expensive (checksums, manifest, smoke test, session creation, feature pipeline)
happens in :func:`load_model`, off the hot path; :meth:`LoadedModel.run` only feeds the session.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from alphaops.core.errors import (
    AlphaOpsError,
    IncompatibleModelError,
    IntegrityError,
    ModelFailedError,
)
from alphaops.features import FeaturePipeline
from alphaops.registry import ModelKey, Registry
from alphaops.registry.bundle import Bundle, verify_bundle
from alphaops.scoring import ACTION_OF_CLASS, TRAINING_REPORT, FeatureSource, feature_spec_of

__all__ = ["IncompatibleModelError", "LoadedModel", "ModelFailedError", "load_model"]


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A verified version with its onnxruntime session; immutable once built."""

    key: ModelKey
    version: int
    session: Any
    input_name: str
    dtype: np.dtype[Any]
    classes: tuple[str, ...]
    class_actions: npt.NDArray[np.int8]
    feature_names: tuple[str, ...]
    kind: str
    lookback: int
    pipeline: FeatureSource | None

    @property
    def ref(self) -> str:
        """Return ``SYMBOL/TYPE/N``."""
        return f"{self.key}/{self.version}"

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Return the shape of one model input row (without the batch axis)."""
        n = len(self.feature_names)
        return (n,) if self.kind == "tabular" else (self.lookback, n)

    def run(self, batch: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        """Return the ``(n, classes)`` probabilities of a prepared input batch."""
        out = self.session.run(None, {self.input_name: batch})[0]
        if out.ndim != 2 or out.shape[1] != len(self.classes):
            raise ModelFailedError(
                f"{self.ref} returned shape {list(out.shape)}, expected "
                f"[batch, {len(self.classes)}]",
                fix="roll back: alphaops rollback " + str(self.key),
            )
        return np.asarray(out, dtype=np.float32)


def load_model(
    registry: Registry,
    key: ModelKey,
    version: int,
    *,
    features: FeatureSource | None = None,
    expect_features: tuple[str, ...] | None = None,
    actions: Mapping[str, int] | None = None,
    threads: int = 1,
) -> LoadedModel:
    """Load, verify and smoke-test ``key/version``, and return it ready to serve.

    Checks checksums and the manifest (through :meth:`Registry.load`), that the feature names
    equal ``expect_features`` (and the injected ``features`` source), that every class has a
    trading action, and that the serving session itself reproduces ``reference.npz``.
    Raises :class:`~alphaops.core.errors.IntegrityError` (or :class:`IncompatibleModelError`).
    """
    ref = f"{key}/{version}"
    bundle = _verified_bundle(registry, ref)
    manifest = bundle.manifest
    names = tuple(f.name for f in manifest.features)
    if expect_features is not None and names != expect_features:
        raise IncompatibleModelError(
            f"{ref} expects features {list(names)} but this runtime feeds {list(expect_features)}",
            fix="retrain on the live feature spec, or restart the runtime for the new features",
            file="manifest.json",
        )
    action_of = dict(ACTION_OF_CLASS if actions is None else actions)
    classes = tuple(manifest.label.class_order)
    unknown = [c for c in classes if c not in action_of]
    if unknown:
        raise IncompatibleModelError(
            f"{ref}: classes {unknown} have no trading action (known: {sorted(action_of)})",
            fix="train with SELL/HOLD/BUY or LOSS/WIN classes, or pass actions={class: -1|0|1}",
            file="manifest.json",
        )
    pipeline = _pipeline(bundle, ref, names, features)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(
            (bundle.path / "model.onnx").read_bytes(), options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own exception types
        raise IntegrityError(
            f"{ref}: onnxruntime cannot load model.onnx ({exc})",
            fix="re-export and re-publish the model",
            file="model.onnx",
        ) from exc
    lookback = int(getattr(manifest.input, "lookback", 1))
    model = LoadedModel(
        key=key,
        version=version,
        session=session,
        input_name=manifest.input.name,
        dtype=np.dtype(manifest.input.dtype),
        classes=classes,
        class_actions=np.array([action_of[c] for c in classes], dtype=np.int8),
        feature_names=names,
        kind=manifest.input.kind,
        lookback=lookback,
        pipeline=pipeline,
    )
    _smoke_test(model, bundle)
    return model


def _verified_bundle(registry: Registry, ref: str) -> Bundle:
    # Checksums and the manifest sha, as Registry.load, but without its smoke test on a
    # scratch onnxruntime session: _smoke_test below runs the same check on the serving
    # session itself. Skipping the duplicate halves the sessions a swap creates and shortens
    # the background work that competes with predictions for the GIL during a swap.
    if not registry.artifacts.local:
        return registry.load(ref)  # downloads, then verifies the local copy
    found = registry.resolve(ref)
    source = registry.artifacts.version_dir(found.key, found.version)
    verify_bundle(
        registry.artifacts.fs, source, smoke_test=False, manifest_sha256=found.manifest_sha256
    )
    return Bundle(Path(source), found.manifest)


def _pipeline(
    bundle: Bundle, ref: str, names: tuple[str, ...], features: FeatureSource | None
) -> FeatureSource | None:
    if features is not None:
        if tuple(features.names) != names:
            raise IncompatibleModelError(
                f"{ref} expects features {list(names)} but the live feature source computes "
                f"{list(features.names)}",
                fix="retrain on the live feature spec or pass the matching feature source",
                file="manifest.json",
            )
        return features
    if not (bundle.path / TRAINING_REPORT).is_file():
        return None  # served from ready feature rows only
    return FeaturePipeline(feature_spec_of(bundle))


def _smoke_test(model: LoadedModel, bundle: Bundle) -> None:
    from alphaops.registry.bundle import load_reference

    inputs, expected = load_reference(
        (bundle.path / "reference.npz").read_bytes(), folder=str(bundle.path)
    )
    want = list(bundle.manifest.input.shape[1:])
    if list(inputs.shape[1:]) != want:
        raise IntegrityError(
            f"{model.ref}: reference.npz inputs have shape {list(inputs.shape)}, the manifest "
            f"input is {bundle.manifest.input.shape}",
            fix="rebuild the reference batch",
            file="reference.npz",
        )
    try:
        got = model.run(np.ascontiguousarray(inputs, dtype=model.dtype))
    except AlphaOpsError:
        raise
    except Exception as exc:  # onnxruntime raises its own exception types
        raise IntegrityError(
            f"{model.ref}: the serving session fails on reference.npz ({exc})",
            fix="re-export and re-publish the model",
            file="model.onnx",
        ) from exc
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-4, atol=1e-5):
        raise IntegrityError(
            f"{model.ref}: the serving session does not reproduce reference.npz",
            fix="re-export and re-publish the model",
            file="reference.npz",
        )
