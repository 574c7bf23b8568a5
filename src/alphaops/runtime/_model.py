"""One verified, ready-to-serve model version: its ONNX session and its input contract.

Loading has two halves. :func:`fetch_verified` does the I/O and the checks (resolve the
version, verify every checksum and the manifest, read the files the runtime needs); it can
run in a helper process (:mod:`alphaops.runtime._loader`). :func:`build_model` turns what was
fetched into a :class:`LoadedModel` in the serving process: the session, the input contract
and a smoke test on the serving session itself. :meth:`LoadedModel.run` only feeds the
session.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from alphaops.core.errors import (
    IncompatibleModelError,
    IntegrityError,
    ModelFailedError,
    UsageError,
)
from alphaops.inference import OnnxSession, class_actions
from alphaops.registry import Manifest, ModelKey, Registry
from alphaops.registry.bundle import Bundle, open_session, smoke_test_session, verify_bundle
from alphaops.scoring import FeatureSource, InputContract

__all__ = [
    "Fetched",
    "IncompatibleModelError",
    "LoadedModel",
    "ModelFailedError",
    "build_model",
    "fetch_verified",
    "load_model",
]


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A verified version with its onnxruntime session and input contract; immutable."""

    key: ModelKey
    version: int
    session: OnnxSession
    contract: InputContract
    classes: tuple[str, ...]
    class_actions: npt.NDArray[np.int8]
    manifest_sha256: str = ""
    """The sha256 of the version's manifest, as the registry holds it (journaled with each
    decision)."""

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


@dataclass(frozen=True)
class Fetched:
    """What the serving process needs of one verified version (plain data: it can be sent
    between processes)."""

    key: ModelKey
    version: int
    folder: str
    """The verified local folder of the bundle (for files read only by older bundles)."""
    manifest_json: str
    model: bytes
    reference: bytes
    manifest_sha256: str


def fetch_verified(registry: Registry, key: ModelKey, version: int) -> Fetched:
    """Resolve ``key/version``, verify its checksums and manifest, and read its model files.

    The bytes returned are the bytes whose sha256 was checked against the manifest.
    """
    ref = f"{key}/{version}"
    found = registry.resolve(ref)
    if registry.artifacts.local:
        # Checksums and the manifest sha, as Registry.load, but without its smoke test on a
        # scratch session: build_model runs the same check on the serving session itself.
        folder = registry.artifacts.version_dir(found.key, found.version)
        verify_bundle(
            registry.artifacts.fs, folder, smoke_test=False, manifest_sha256=found.manifest_sha256
        )
        bundle = Bundle(Path(folder), found.manifest)
    else:
        bundle = registry.load(ref)  # downloads, then verifies the local copy
    files = {}
    for name in ("model.onnx", "reference.npz"):
        data = (bundle.path / name).read_bytes()
        entry = bundle.manifest.file(name)
        if entry is None or hashlib.sha256(data).hexdigest() != entry.sha256:
            raise IntegrityError(
                f"{ref}: {name} changed while it was being loaded",
                fix="restore the bundle (alphaops registry verify) and promote again",
                file=name,
            )
        files[name] = data
    return Fetched(
        key,
        version,
        str(bundle.path),
        bundle.manifest.model_dump_json(),
        files["model.onnx"],
        files["reference.npz"],
        found.manifest_sha256,
    )


def build_model(
    fetched: Fetched,
    *,
    features: FeatureSource | None = None,
    expect_features: tuple[str, ...] | None = None,
    actions: Mapping[str, int] | None = None,
    threads: int = 1,
) -> LoadedModel:
    """Build the serving model of a fetched version and smoke-test its session.

    Checks that the feature names equal ``expect_features`` (and the injected ``features``
    source), that every class has a trading action, and that the serving session itself
    reproduces ``reference.npz``. Raises :class:`~alphaops.core.errors.IntegrityError` (or
    :class:`IncompatibleModelError`).
    """
    key, version = fetched.key, fetched.version
    ref = f"{key}/{version}"
    manifest = Manifest.model_validate_json(fetched.manifest_json)
    bundle = Bundle(Path(fetched.folder), manifest)
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
    session = open_session(manifest, fetched.model, where=ref, threads=threads)
    smoke_test_session(manifest, session, fetched.reference, folder=fetched.folder)
    return LoadedModel(
        key, version, session, contract, classes, actions_of, fetched.manifest_sha256
    )


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
    """Load, verify and smoke-test ``key/version`` in this process; return it ready to serve."""
    return build_model(
        fetch_verified(registry, key, version),
        features=features,
        expect_features=expect_features,
        actions=actions,
        threads=threads,
    )
