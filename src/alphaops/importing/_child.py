"""The sandboxed loader: the only code in alphaops that unpickles, run as its own process.

Run by :mod:`alphaops.importing._sandbox` as ``python -I _child.py WORKDIR`` with a cleared
environment, never imported by alphaops. Before reading any file it installs an audit hook
(``sys.addaudithook``, which cannot be removed) that refuses sockets, name lookups, new
processes, signals to other processes and loading further native libraries, and it lowers
its own CPU-time, address-space and file-size limits (soft = hard, so they cannot be raised
again). Only then does it read ``WORKDIR/request.json``, unpickle the legacy files, convert
the model to ONNX and score the golden batch with the legacy model. It writes
``result.json``, ``model.onnx`` and ``.npy`` arrays (read by the parent with
``allow_pickle=False``), or ``error.json`` with a kind and a message, and exits.

It imports nothing from alphaops, so a crafted pickle cannot reach alphaops state, and the
parent never unpickles anything.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import traceback
from pathlib import Path
from typing import Any

_BLOCKED_PREFIXES = (
    "socket.",
    "subprocess.",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "os.forkpty",
    "os.kill",
    "os.killpg",
    "pty.",
)
# Libraries a legacy pickle may legitimately reference; only their own native files may be
# loaded through ctypes (LightGBM and XGBoost load theirs that way).
_KNOWN_LIBRARIES = ("numpy", "pandas", "sklearn", "lightgbm", "xgboost", "scipy", "joblib")
_DENIED_SYMBOLS = {
    "socket",
    "connect",
    "bind",
    "listen",
    "accept",
    "sendto",
    "sendmsg",
    "getaddrinfo",
    "gethostbyname",
    "system",
    "fork",
    "vfork",
    "execve",
    "execv",
    "execvp",
    "posix_spawn",
    "kill",
    "ptrace",
    "setrlimit",
    "prlimit",
}


class SandboxViolation(RuntimeError):
    """An action the loader child never allows (network, processes, new native code)."""


def _audit(event: str, args: tuple[object, ...]) -> None:
    if event.startswith(_BLOCKED_PREFIXES):
        raise SandboxViolation(f"the import sandbox refused {event}{_short(args)}")
    if event == "ctypes.dlsym" and len(args) > 1 and str(args[1]) in _DENIED_SYMBOLS:
        raise SandboxViolation(f"the import sandbox refused the native call {args[1]}")
    if event == "ctypes.dlopen" and not _allowed_native(args[0] if args else None):
        raise SandboxViolation(f"the import sandbox refused loading native code {args[:1]}")


def _short(args: tuple[object, ...]) -> str:
    text = repr(args)
    return text if len(text) < 160 else text[:157] + "..."


def _library_dirs() -> tuple[str, ...]:
    import importlib.util
    import os.path

    found: list[str] = []
    for name in _KNOWN_LIBRARIES:
        spec = importlib.util.find_spec(name)  # locates the package without running it
        if spec is not None and spec.submodule_search_locations:
            found.extend(os.path.realpath(p) + os.sep for p in spec.submodule_search_locations)
    return tuple(found)


def _allowed_native(path: object) -> bool:
    import os.path

    if path is None:
        return True  # the process's own symbols (ctypes.pythonapi); named calls are checked
    if not isinstance(path, str) or not path:
        return False
    return os.path.realpath(path).startswith(_LIBRARY_DIRS)


_LIBRARY_DIRS: tuple[str, ...] = ()

_OPSET = 15
_ML_OPSET = 3


class LoaderError(Exception):
    """A legacy file the child could load but not use; ``kind`` tells the parent which."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _limit(limits: dict[str, int]) -> None:
    for name, key in (
        ("RLIMIT_CPU", "cpu_seconds"),
        ("RLIMIT_AS", "memory_bytes"),
        ("RLIMIT_FSIZE", "file_bytes"),
    ):
        value = int(limits[key])
        resource.setrlimit(getattr(resource, name), (value, value))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _unpickle(path: str, what: str) -> Any:
    import joblib  # type: ignore[import-untyped]

    try:
        return joblib.load(path)
    except SandboxViolation:
        raise
    except MemoryError as exc:
        raise LoaderError("memory", f"{what} {path} needs more memory than allowed") from exc
    except (ModuleNotFoundError, ImportError) as exc:
        raise LoaderError("missing_module", f"{what} {path} needs {exc}") from exc
    except Exception as exc:
        raise LoaderError("corrupt", f"{what} {path} cannot be unpickled: {exc!r}") from exc


def _names(value: Any) -> list[str]:
    if hasattr(value, "tolist"):
        value = value.tolist()
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise LoaderError("features", f"the feature list holds a {type(value).__name__}")
    return [str(v) for v in value]


def _model_classes(model: Any) -> list[str]:
    classes = getattr(model, "classes_", None)
    if classes is None and type(model).__name__ == "Booster":
        n = int(getattr(model, "num_model_per_iteration", lambda: 1)())
        return [str(i) for i in range(2 if n == 1 else n)]
    if classes is None:
        raise LoaderError(
            "not_a_model",
            f"the unpickled object is a {type(model).__module__}.{type(model).__name__}, "
            "not a fitted classifier (no classes_)",
        )
    return [str(c.item() if hasattr(c, "item") else c) for c in classes]


def _predict(model: Any, X: Any) -> Any:
    import numpy as np

    if type(model).__name__ == "Booster":
        raw = np.asarray(model.predict(X.astype(np.float64)), dtype=np.float64)
        return np.column_stack([1.0 - raw, raw]) if raw.ndim == 1 else raw
    if not hasattr(model, "predict_proba"):
        raise LoaderError("not_a_model", f"{type(model).__name__} has no predict_proba")
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        import pandas as pd

        X = pd.DataFrame(X, columns=list(names))
    return np.asarray(model.predict_proba(X), dtype=np.float64)


def _convert(model: Any, n_features: int) -> tuple[bytes, str]:
    module = type(model).__module__
    if module.startswith("lightgbm"):
        import onnxmltools
        from onnxmltools.convert.common.data_types import FloatTensorType

        types = [("input", FloatTensorType([None, n_features]))]
        proto = onnxmltools.convert_lightgbm(
            model, initial_types=types, zipmap=False, target_opset=_OPSET
        )
    elif module.startswith("xgboost"):
        import onnxmltools
        from onnxmltools.convert.common.data_types import FloatTensorType

        types = [("input", FloatTensorType([None, n_features]))]
        proto = onnxmltools.convert_xgboost(model, initial_types=types, target_opset=_OPSET)
    elif module.startswith("sklearn"):
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType

        last = model.steps[-1][1] if hasattr(model, "steps") else model
        proto = convert_sklearn(
            model,
            initial_types=[("input", FloatTensorType([None, n_features]))],
            options={id(last): {"zipmap": False}},
            target_opset={"": _OPSET, "ai.onnx.ml": _ML_OPSET},
        )
    else:
        raise LoaderError(
            "unsupported",
            f"no ONNX converter for {module}.{type(model).__name__} (supported: scikit-learn, "
            "LightGBM, XGBoost)",
        )
    outputs = [o.name for o in proto.graph.output]
    probs = next((name for name in outputs if "prob" in name.lower()), outputs[-1])
    return proto.SerializeToString(), probs


def _affine(transform: Any, X: Any, what: str) -> tuple[list[float], list[float]]:
    """Return per-feature ``(scale, offset)`` with ``transform(x) == x * scale + offset``."""
    import numpy as np

    n = X.shape[1]
    probe = np.vstack([np.zeros((1, n)), np.eye(n)])
    out = np.asarray(transform.transform(probe), dtype=np.float64)
    if out.shape != probe.shape:
        raise LoaderError("scaler", f"{what} maps {n} features to shape {out.shape}")
    offset = out[0]
    scale = np.diagonal(out[1:] - offset)
    want = np.asarray(transform.transform(X.astype(np.float64)), dtype=np.float64)
    got = X.astype(np.float64) * scale + offset
    if not np.allclose(want, got, rtol=1e-6, atol=1e-9):
        raise LoaderError(
            "scaler",
            f"{what} ({type(transform).__name__}) is not a per-feature affine scaler; only "
            "scalers of the form x * scale + offset can be folded into the ONNX graph",
        )
    return scale.tolist(), offset.tolist()


def _golden(request: dict[str, Any], workdir: Path) -> Any:
    import numpy as np

    if request.get("golden_pickle"):
        frame = _unpickle(request["golden_pickle"], "golden batch")
        columns = request["features"]
        missing = [c for c in columns if c not in getattr(frame, "columns", [])]
        if missing:
            raise LoaderError("features", f"the training frame lacks columns {missing}")
        values = np.asarray(frame[columns], dtype=np.float64)
        # The last complete rows; FreqAI's frame holds normalised features (see _run).
        return values[np.isfinite(values).all(axis=1)][-int(request["golden_rows"]) :]
    return np.load(workdir / "golden.npy", allow_pickle=False)


def _run(workdir: Path) -> dict[str, Any]:
    import numpy as np

    request = json.loads((workdir / "request.json").read_text())
    _limit(request["limits"])
    if request.get("task") == "names":
        return {"pid": os.getpid(), "names": _names(_unpickle(request["model"], "feature list"))}
    if request.get("task") == "scaler":
        golden = np.load(workdir / "golden.npy", allow_pickle=False)
        scale, offset = _affine(_unpickle(request["model"], "scaler"), golden, "scaler")
        return {"pid": os.getpid(), "scale": scale, "offset": offset}
    model = _unpickle(request["model"], "model")
    classes = _model_classes(model)
    X = np.ascontiguousarray(_golden(request, workdir), dtype=np.float32)
    n_features = int(X.shape[1])
    expected = getattr(model, "n_features_in_", None)
    if expected is None and hasattr(model, "num_feature"):
        expected = model.num_feature()
    if expected is not None and int(expected) != n_features:
        raise LoaderError(
            "features", f"the model takes {int(expected)} features, the sidecar lists {n_features}"
        )
    names = getattr(model, "feature_names_in_", None)
    result: dict[str, Any] = {
        "pid": os.getpid(),
        "type": f"{type(model).__module__}.{type(model).__name__}",
        "classes": classes,
        "feature_names_in": None if names is None else [str(n) for n in names],
        "scaler": None,
    }
    model_input = X.astype(np.float64)
    if request.get("scaler"):
        scaler = _unpickle(request["scaler"], "scaler")
        if request.get("golden_pickle"):
            # FreqAI's training frame is already scaled: recover raw inputs through the
            # inverse of the (affine) scaler.
            scale, offset = _affine(scaler, X, "scaler")
            X = ((X.astype(np.float64) - np.asarray(offset)) / np.asarray(scale)).astype(np.float32)
        scale, offset = _affine(scaler, X, "scaler")
        result["scaler"] = {"scale": scale, "offset": offset, "type": type(scaler).__name__}
        model_input = X.astype(np.float64) * np.asarray(scale) + np.asarray(offset)
    legacy = _predict(model, model_input.astype(np.float32))
    onnx_bytes, probs = _convert(model, n_features)
    result["probabilities_output"] = probs
    (workdir / "model.onnx").write_bytes(onnx_bytes)
    np.save(workdir / "golden_out.npy", X, allow_pickle=False)
    np.save(workdir / "legacy.npy", legacy, allow_pickle=False)
    return result


def main() -> int:
    """Run one request in ``sys.argv[1]``; exit 0 with a result, 3 with ``error.json``."""
    global _LIBRARY_DIRS
    # First thing, before any file is read: the hook cannot be removed once added. Only when
    # run as the child (never on import, e.g. by doctest collection in another process).
    _LIBRARY_DIRS = _library_dirs()
    sys.addaudithook(_audit)
    workdir = Path(sys.argv[1])
    try:
        result = _run(workdir)
    except SandboxViolation as exc:
        error = {"kind": "sandbox", "message": str(exc)}
    except LoaderError as exc:
        error = {"kind": exc.kind, "message": str(exc)}
    except MemoryError:
        error = {"kind": "memory", "message": "the loader ran out of its memory limit"}
    except BaseException as exc:  # anything a crafted file raises is reported, not re-raised
        error = {"kind": "failed", "message": f"{exc!r}", "trace": traceback.format_exc()[-2000:]}
    else:
        (workdir / "result.json").write_text(json.dumps(result))
        return 0
    (workdir / "error.json").write_text(json.dumps(error))
    return 3


if __name__ == "__main__":
    sys.exit(main())
