"""One verified, ready-to-serve model version: its ONNX session and its input contract.

Everything expensive (checksums, manifest, session creation, the smoke test on the serving
session itself, the feature spec) happens in :func:`load_model`, off the hot path;
:meth:`LoadedModel.run` only feeds the session.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from alphaops.core.errors import IncompatibleModelError, ModelFailedError, UsageError
from alphaops.inference import OnnxSession, class_actions
from alphaops.registry import ModelKey, Registry
from alphaops.registry.bundle import Bundle, open_session, smoke_test_session, verify_bundle
from alphaops.scoring import FeatureSource, InputContract

__all__ = ["IncompatibleModelError", "LoadedModel", "ModelFailedError", "load_model"]


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A verified version with its onnxruntime session and input contract; immutable."""

    key: ModelKey
    version: int
    session: OnnxSession
    contract: InputContract
    classes: tuple[str, ...]
    class_actions: npt.NDArray[np.int8]

    @property
    def ref(self) -> str:
        """Return ``SYMBOL/TYPE/N``."""
        return f"{self.key}/{self.version}"

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Return the model's feature names in input order."""
        return self.contract.names

    def run(self, batch: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        """Return the ``(n, classes)`` probabilities of a prepared input batch."""
        return self.session.run(batch)


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

    Checks checksums and the manifest, that the feature names equal ``expect_features`` (and
    the injected ``features`` source), that every class has a trading action, and that the
    serving session itself reproduces ``reference.npz``. Raises
    :class:`~alphaops.core.errors.IntegrityError` (or :class:`IncompatibleModelError`).
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
    classes = tuple(manifest.label.class_order)
    try:
        actions_of = class_actions(classes, actions, where=ref)
        contract = InputContract.from_bundle(bundle, features=features, where=ref)
    except UsageError as exc:
        raise IncompatibleModelError(str(exc.message), fix=exc.fix, file="manifest.json") from exc
    session = open_session(
        manifest, (bundle.path / "model.onnx").read_bytes(), where=ref, threads=threads
    )
    smoke_test_session(
        manifest, session, (bundle.path / "reference.npz").read_bytes(), folder=str(bundle.path)
    )
    return LoadedModel(key, version, session, contract, classes, actions_of)


def _verified_bundle(registry: Registry, ref: str) -> Bundle:
    # Checksums and the manifest sha, as Registry.load, but without its smoke test on a
    # scratch session: load_model runs the same check on the serving session itself.
    if not registry.artifacts.local:
        return registry.load(ref)  # downloads, then verifies the local copy
    found = registry.resolve(ref)
    source = registry.artifacts.version_dir(found.key, found.version)
    verify_bundle(
        registry.artifacts.fs, source, smoke_test=False, manifest_sha256=found.manifest_sha256
    )
    return Bundle(Path(source), found.manifest)
