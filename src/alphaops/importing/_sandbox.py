"""Run the legacy loader child (:mod:`alphaops.importing._child`) and read back what it made.

The child is a separate Python process started with ``-I`` (isolated: no ``PYTHON*``
variables, no user site, not the current folder on the path), a cleared environment, its own
scratch folder as working directory and home, and a new session so a timeout kills all of
it. Inside, before any file is read, an audit hook refuses sockets, name lookups, new
processes and signals, and the child lowers its own CPU-time, address-space and file-size
limits. What comes back is data only: JSON, ONNX bytes and ``.npy`` arrays read with
``allow_pickle=False``.

The audit hook is a tripwire in the same interpreter, not a kernel boundary (no namespaces or
seccomp here): it stops a payload that uses Python's own socket, subprocess and ctypes entry
points; the limits and the cleared environment bound the rest. Only import files you trust.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from alphaops.core.errors import (
    AlphaOpsError,
    ExternalServiceError,
    IncompatibleModelError,
    IntegrityError,
    UsageError,
)

__all__ = ["ChildResult", "SandboxLimits", "read_names", "read_scaler", "run_loader"]

_CHILD = Path(__file__).with_name("_child.py")


class SandboxLimits(BaseModel):
    """Limits of the loader child process (frozen; unknown keys are refused)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cpu_seconds: int = Field(120, ge=1, description="CPU time (RLIMIT_CPU) of the child.")
    wall_seconds: float = Field(300.0, gt=0, description="Wall-clock timeout; then killed.")
    memory_bytes: int = Field(
        4 << 30, ge=256 << 20, description="Address space (RLIMIT_AS) of the child."
    )
    file_bytes: int = Field(
        1 << 30, ge=1 << 20, description="Largest file the child may write (RLIMIT_FSIZE)."
    )


@dataclass(frozen=True)
class ChildResult:
    """What the child returned: the converted model, the golden batch and legacy outputs."""

    pid: int
    model_type: str
    classes: tuple[str, ...]
    onnx: bytes
    probabilities_output: str
    golden: npt.NDArray[np.float32]
    legacy: npt.NDArray[np.float64]
    scaler: dict[str, Any] | None
    feature_names_in: tuple[str, ...] | None
    info: dict[str, Any] = field(default_factory=dict)


def _environment(workdir: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(workdir),
        "TMPDIR": str(workdir),
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def read_names(path: Path, *, where: str, limits: SandboxLimits) -> list[str]:
    """Unpickle a feature-list sidecar in the sandboxed child; return its strings."""
    with tempfile.TemporaryDirectory(prefix="alphaops-import-") as tmp:
        workdir = Path(tmp)
        info = _call(workdir, {"task": "names", "model": str(path.resolve())}, where, limits)
    names = info.get("names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise IntegrityError(
            f"{where} does not hold a list of column names", fix="re-save it", file=where
        )
    return names


def read_scaler(
    path: Path, golden: npt.NDArray[Any], *, where: str, limits: SandboxLimits
) -> tuple[list[float], list[float]]:
    """Unpickle a scaler in the sandboxed child; return it as ``(scale, offset)`` numbers.

    The scaler must be per-feature affine (``x * scale + offset``), checked on ``golden``.
    """
    with tempfile.TemporaryDirectory(prefix="alphaops-import-") as tmp:
        workdir = Path(tmp)
        np.save(workdir / "golden.npy", np.asarray(golden, dtype=np.float64))
        info = _call(workdir, {"task": "scaler", "model": str(path.resolve())}, where, limits)
    try:
        return [float(v) for v in info["scale"]], [float(v) for v in info["offset"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(
            f"the sandboxed loader of {where} returned a malformed scaler ({exc!r})",
            fix="do not import this file; the loader's output was tampered with or broken",
            file=where,
        ) from exc


def _call(
    workdir: Path, request: dict[str, Any], where: str, limits: SandboxLimits
) -> dict[str, Any]:
    request = request | {
        "limits": limits.model_dump(include={"cpu_seconds", "memory_bytes", "file_bytes"})
    }
    (workdir / "request.json").write_text(json.dumps(request))
    try:
        proc = subprocess.run(
            [sys.executable, "-I", str(_CHILD), str(workdir)],
            cwd=workdir,
            env=_environment(workdir),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=limits.wall_seconds,
            start_new_session=True,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ExternalServiceError(
            f"loading {where} took longer than {limits.wall_seconds:g} s; the loader was killed",
            fix="check the file (a crafted pickle may loop), or raise the time limit",
            file=where,
        ) from exc
    error_file = workdir / "error.json"
    if error_file.is_file():
        raise _error_of(_json_object(error_file, where), where)
    result_file = workdir / "result.json"
    if proc.returncode != 0 or not result_file.is_file():
        tail = proc.stderr.decode(errors="replace")[-600:].strip()
        signal = -proc.returncode if proc.returncode < 0 else None
        what = f"was killed by signal {signal}" if signal else f"exited with {proc.returncode}"
        raise IntegrityError(
            f"the sandboxed loader of {where} {what} without a result (CPU or memory limit, "
            f"or a crash){': ' + tail if tail else ''}",
            fix="check the file; raise the limits only for a file you trust",
            file=where,
        )
    return _json_object(result_file, where)


def _json_object(path: Path, where: str) -> dict[str, Any]:
    # The child's output is untrusted data (a crafted pickle may have written it).
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        data = exc
    if not isinstance(data, dict):
        raise IntegrityError(
            f"the sandboxed loader of {where} wrote a malformed {path.name}",
            fix="do not import this file; the loader's output was tampered with or broken",
            file=where,
        )
    return data


def run_loader(
    *,
    model: Path,
    where: str,
    limits: SandboxLimits,
    golden: npt.NDArray[Any] | None = None,
    golden_pickle: Path | None = None,
    golden_rows: int = 256,
    features: list[str] | None = None,
    scaler: Path | None = None,
) -> ChildResult:
    """Load ``model`` (and ``scaler``) in the sandboxed child; return its conversion.

    The golden batch is ``golden`` (raw feature rows) or, for FreqAI, read by the child from
    ``golden_pickle`` (the pickled training frame, columns ``features``). Errors the child
    reports become typed errors naming ``where``.
    """
    with tempfile.TemporaryDirectory(prefix="alphaops-import-") as tmp:
        workdir = Path(tmp)
        request: dict[str, Any] = {
            "model": str(model.resolve()),
            "scaler": None if scaler is None else str(scaler.resolve()),
            "golden_pickle": None if golden_pickle is None else str(golden_pickle.resolve()),
            "golden_rows": golden_rows,
            "features": features or [],
        }
        if golden is not None:
            np.save(workdir / "golden.npy", np.asarray(golden, dtype=np.float64))
        info = _call(workdir, request, where, limits)
        try:
            golden_out = np.load(workdir / "golden_out.npy", allow_pickle=False)
            legacy = np.load(workdir / "legacy.npy", allow_pickle=False)
            onnx_bytes = (workdir / "model.onnx").read_bytes()
        except (OSError, ValueError) as exc:
            raise IntegrityError(
                f"the sandboxed loader of {where} returned unreadable output ({exc})",
                fix="report this; the loader output was malformed",
                file=where,
            ) from exc
    try:
        names = info.get("feature_names_in")
        scaler = info.get("scaler")
        result = ChildResult(
            pid=int(info["pid"]),
            model_type=str(info["type"]),
            classes=tuple(str(c) for c in info["classes"]),
            onnx=onnx_bytes,
            probabilities_output=str(info["probabilities_output"]),
            golden=np.asarray(golden_out, dtype=np.float32),
            legacy=np.asarray(legacy, dtype=np.float64),
            scaler=None
            if scaler is None
            else {
                "scale": [float(v) for v in scaler["scale"]],
                "offset": [float(v) for v in scaler["offset"]],
                "type": str(scaler.get("type")),
            },
            feature_names_in=None if names is None else tuple(str(n) for n in names),
            info=info,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(
            f"the sandboxed loader of {where} returned a malformed result ({exc!r})",
            fix="do not import this file; the loader's output was tampered with or broken",
            file=where,
        ) from exc
    if result.legacy.ndim != 2 or len(result.legacy) != len(result.golden):
        raise IntegrityError(
            f"the sandboxed loader of {where} returned scores of shape "
            f"{list(result.legacy.shape)} for {len(result.golden)} golden rows",
            fix="point at a classifier whose predict_proba returns one column per class",
            file=where,
        )
    return result


def _error_of(error: dict[str, Any], where: str) -> AlphaOpsError:
    kind, message = str(error.get("kind")), str(error.get("message"))
    fixes = {
        "sandbox": "do not import this file: loading it tried to reach the network or start "
        "processes",
        "corrupt": "restore the file from a backup or re-save the model",
        "missing_module": "install the library the model was saved with (pip install "
        "'alphaops[train]'), in a compatible version",
        "not_a_model": "point at a fitted classifier saved with joblib or pickle",
        "unsupported": "convert the model to ONNX yourself and import the .onnx file",
        "memory": "raise the memory limit only for a file you trust",
        "scaler": "store the scaler as numbers, or fold it into the model before importing",
    }
    if kind == "features":
        return IncompatibleModelError(
            f"{where}: {message}", fix="pass the sidecar that belongs to this model", file=where
        )
    if kind == "unsupported":
        return UsageError(f"{where}: {message}", fix=fixes[kind], file=where)
    return IntegrityError(
        f"{where}: {message}",
        fix=fixes.get(kind, "check the file; the loader failed on it"),
        file=where,
        loader_error=kind,
    )
