"""Test helpers: tiny but real ONNX models and bundles (needs the ``onnx`` package, in ``dev``).

The model is a logistic regression written with the ``onnx`` helper API (``MatMul`` + ``Add``
+ ``Softmax``; a ``Flatten`` first for sequence inputs), so tests run real onnxruntime sessions.

>>> import tempfile, pathlib
>>> folder = build_tiny_bundle(pathlib.Path(tempfile.mkdtemp()) / "b", seed=3)
>>> sorted(p.name for p in folder.iterdir())
['manifest.json', 'model.onnx', 'native', 'reference.npz', 'reports']
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from alphaops._version import __version__
from alphaops.registry.bundle import write_bundle

if TYPE_CHECKING:
    from alphaops.registry._types import GateRun, ModelVersion
    from alphaops.registry.registry import Registry

__all__ = ["build_tiny_bundle", "churn", "logistic_regression_onnx", "publish_many"]


def logistic_regression_onnx(
    weights: npt.NDArray[np.float32], bias: npt.NDArray[np.float32], *, lookback: int | None = None
) -> bytes:
    """Return a serialized ONNX logistic regression: ``softmax(x @ weights + bias)``.

    ``weights`` has shape ``[n_inputs, n_classes]``; with ``lookback`` the input is
    ``[batch, lookback, n_inputs // lookback]`` and is flattened first.
    """
    from onnx import TensorProto, helper, numpy_helper

    n_in, n_classes = weights.shape
    nodes = []
    if lookback is None:
        graph_input = helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, n_in])
        matmul_in = "input"
    else:
        shape = [None, lookback, n_in // lookback]
        graph_input = helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)
        nodes.append(helper.make_node("Flatten", ["input"], ["flat"], axis=1))
        matmul_in = "flat"
    nodes += [
        helper.make_node("MatMul", [matmul_in, "W"], ["logits0"]),
        helper.make_node("Add", ["logits0", "B"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    output = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, n_classes])
    graph = helper.make_graph(
        nodes,
        "logistic_regression",
        [graph_input],
        [output],
        initializer=[
            numpy_helper.from_array(weights.astype(np.float32), "W"),
            numpy_helper.from_array(bias.astype(np.float32), "B"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def _softmax(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def build_tiny_bundle(
    folder: Path,
    *,
    symbol: str = "BTCUSDT",
    model_type: str = "logreg",
    seed: int = 0,
    n_features: int = 4,
    lookback: int | None = None,
    metrics: dict[str, float] | None = None,
    replaces: dict[str, Any] | None = None,
) -> Path:
    """Write a complete, valid bundle with a tiny logistic regression into ``folder``.

    Different seeds give different weights (so different checksums); expected outputs are
    computed with NumPy, independently of onnxruntime.
    """
    rng = np.random.default_rng(seed)
    n_in = n_features * (lookback or 1)
    weights = rng.normal(size=(n_in, 2)).astype(np.float32)
    bias = rng.normal(size=2).astype(np.float32)
    shape = (8, n_features) if lookback is None else (8, lookback, n_features)
    inputs = rng.normal(size=shape).astype(np.float32)
    flat = inputs.reshape(len(inputs), -1).astype(np.float64)
    expected = _softmax(flat @ weights.astype(np.float64) + bias).astype(np.float32)
    input_spec: dict[str, Any] = (
        {"kind": "tabular", "n_features": n_features}
        if lookback is None
        else {"kind": "sequence", "lookback": lookback, "n_features": n_features}
    )
    manifest = {
        "symbol": symbol,
        "model_type": model_type,
        "features": [{"name": f"f{i}", "dtype": "float32"} for i in range(n_features)],
        "input": input_spec,
        "label": {"rule": "binary", "horizon": 4, "threshold": 0.01, "class_order": ["down", "up"]},
        "data": {
            "start": datetime(2024, 1, 1, tzinfo=UTC),
            "end": datetime(2024, 6, 30, 23, tzinfo=UTC),
            "timeframe": "1h",
            "fingerprint": f"{seed:064x}",
            "rows": 4344,
        },
        "seed": seed,
        "library_versions": {"numpy": np.__version__},
        "code_version": __version__,
        "params": {"C": 1.0, "n_features": n_features},
        "metrics": metrics if metrics is not None else {"accuracy": 0.5 + seed % 10 / 100},
        "replaces": replaces,
    }
    folder.mkdir(parents=True, exist_ok=True)
    write_bundle(
        folder,
        model_onnx=logistic_regression_onnx(weights, bias, lookback=lookback),
        reference_inputs=inputs,
        reference_expected=expected,
        manifest=manifest,
        native={"weights.json": json.dumps({"W": weights.tolist(), "b": bias.tolist()}).encode()},
        reports={"training.md": f"# logreg seed {seed}\n".encode()},
    )
    return folder


def record_passing_gates(registry: Registry, ref: str) -> GateRun:
    """Record a passing gate run for the version ``ref`` names, clearing it for promotion.

    For tests of what happens *after* the gates (moves, rollouts, hot-swaps) on tiny bundles
    the real gates cannot judge; the run says so in its document.
    """
    version = registry.resolve(ref)
    after_training = version.manifest.data.end + timedelta(hours=1)  # out of sample
    in_force = registry.gate_policy()  # a pass clears only under the policy in force
    return registry.record_gates(
        version,
        manifest_sha256=version.manifest_sha256,
        passed=True,
        document={
            "gates": [],
            "window_start": after_training.isoformat(),
            "window_end": (after_training + timedelta(days=30)).isoformat(),
            "note": "recorded by alphaops.registry.testing",
        },
        policy_hash=None if in_force is None else in_force.policy_hash,
        actor="alphaops.registry.testing",
    )


def publish_cleared(registry: Registry, folder: Path) -> ModelVersion:
    """Publish the bundle in ``folder`` and record passing gates for it (see above)."""
    version = registry.publish(folder)
    record_passing_gates(registry, version.ref)
    return version


def publish_many(db_url: str, artifacts: str, folders: list[str]) -> list[int]:
    """Publish each bundle folder in turn and return the version numbers (a process worker)."""
    from alphaops.registry.registry import open_registry

    with open_registry(db_url, artifacts=artifacts) as registry:
        return [registry.publish(Path(folder)).version for folder in folders]


def churn(db_url: str, artifacts: str, folders: list[str]) -> None:
    """Publish and promote forever, printing ``ready`` then one line per step (killed by tests)."""
    import itertools
    import sys

    from alphaops.core.errors import VersionConflictError
    from alphaops.registry.refs import CHAMPION, ModelKey
    from alphaops.registry.registry import open_registry

    with open_registry(db_url, artifacts=artifacts, actor="churn") as registry:
        print("ready", flush=True)
        for step, folder in enumerate(itertools.cycle(folders)):
            published = registry.publish(Path(folder))
            record_passing_gates(registry, published.ref)
            print(f"published {published.version}", flush=True)
            key = ModelKey(published.key.symbol, published.key.model_type)
            current = registry.aliases(key).get(CHAMPION)
            try:
                if step % 5 == 4 and current is not None and len(registry.aliases(key)) > 1:
                    registry.rollback(key, reason=f"churn step {step}", expect=current)
                else:
                    registry.promote(published.ref, expect=current, reason=f"churn step {step}")
            except VersionConflictError:
                continue
            sys.stdout.write(f"moved {step}\n")
            sys.stdout.flush()


if __name__ == "__main__":
    import sys

    churn(sys.argv[1], sys.argv[2], sys.argv[3:])
