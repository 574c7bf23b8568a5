"""Import ``<family>_<symbol>.pth`` torch state dicts into a known network, then to ONNX.

The file is read with ``torch.load(weights_only=True)`` (tensors only: no code runs) and
loaded strictly into alphaops's own LSTM (:class:`~alphaops.training._nets.BiLSTMAttention`,
sizes read from the tensor shapes), or into ``--architecture module:Class`` — a class the user
names, which is imported and so runs as trusted code (recorded in the manifest). A pickled
``_scaler.pkl`` is read as numbers in the sandboxed child (``--trust-pickle``) and folded in;
``_cols.pkl`` names the features. Parity: the torch network (scaler applied in numpy) against
the exported ONNX graph on golden windows.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from alphaops.core.errors import IncompatibleModelError, IntegrityError, UsageError
from alphaops.importing._discover import Found
from alphaops.importing._features import match_features
from alphaops.importing._flat_onnx import windows
from alphaops.importing._legacy import (
    GoldenData,
    ImportOptions,
    golden_batch,
    read_feature_list,
    require_trust,
    scan_file,
)
from alphaops.importing._onnx import fold_scaler, parity_of
from alphaops.importing._publish import Converted, class_order, source_files, window_of
from alphaops.importing._sandbox import read_scaler

__all__ = ["convert_torch", "load_state_dict"]


def load_state_dict(path: Any, *, where: str) -> dict[str, Any]:
    """Read a state dict with ``weights_only=True``; refuse anything else, typed."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError …
        text = str(exc)
        if "weights_only" in text or "Unsupported global" in text:
            raise UsageError(
                f"{where} is a full pickled torch model, not a state dict; loading it would "
                "run its code",
                fix="save model.state_dict() instead, or export the model to ONNX",
                file=where,
            ) from exc
        raise IntegrityError(
            f"{where} cannot be read as a torch state dict ({type(exc).__name__}: "
            f"{text[:200]}); it is truncated or corrupted",
            fix="restore the file from a backup or re-save the state dict",
            file=where,
        ) from exc
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise IntegrityError(
            f"{where} holds no state dict of tensors",
            fix="save model.state_dict()",
            file=where,
        )
    return dict(state)


def _alphaops_lstm(state: Mapping[str, Any], where: str) -> tuple[Any, dict[str, int]]:
    from alphaops.training._nets import BiLSTMAttention

    try:
        hidden = int(state["lstm.weight_hh_l0"].shape[1])
        n_features = int(state["lstm.weight_ih_l0"].shape[1])
        n_classes = int(state["head.weight"].shape[0])
    except KeyError as exc:
        raise IncompatibleModelError(
            f"{where} is not a state dict of alphaops's LSTM (no {exc.args[0]!r}); its keys "
            f"start {sorted(state)[:6]}",
            fix="pass --architecture module:Class naming the network it was saved from",
            file=where,
        ) from exc
    layers = sum(1 for k in state if k.startswith("lstm.weight_ih_l") and "reverse" not in k)
    net = BiLSTMAttention(n_features, n_classes, hidden, layers, 0.0)
    sizes = {"hidden": hidden, "layers": layers, "n_features": n_features, "n_classes": n_classes}
    return net, sizes


def _user_architecture(spec: str, where: str) -> Any:
    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name:
        raise UsageError(
            f"--architecture {spec!r} is not module:Class", fix="e.g. mybot.nets:PriceLSTM"
        )
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise UsageError(
            f"cannot import --architecture {spec} ({exc})",
            fix="make the module importable (PYTHONPATH) and check the class name",
        ) from exc
    return cls()


def _load_into(net: Any, state: Mapping[str, Any], where: str) -> None:
    result = net.load_state_dict(dict(state), strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("scale.")]
    if missing or result.unexpected_keys:
        raise IncompatibleModelError(
            f"{where} does not fit the network: missing {missing}, unexpected "
            f"{list(result.unexpected_keys)}",
            fix="pass --architecture module:Class naming the network it was saved from",
            file=where,
        )
    net.eval()


def _export(net: Any, lookback: int, n_features: int) -> bytes:
    from alphaops.training.sequence import export_net

    return export_net(net, lookback, n_features)


def _torch_scores(net: Any, batch: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    import torch

    with torch.no_grad():
        logits = net(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)))
        return torch.softmax(logits, dim=-1).double().numpy()


def convert_torch(found: Found, options: ImportOptions, data: GoldenData) -> Converted:
    """Load a state dict into its network, export it to ONNX and check parity."""
    where = str(found.model)
    if options.lookback is None:
        raise UsageError(
            f"{where} is a sequence model: alphaops needs its window length",
            fix="pass --lookback T (the number of bars per window it was trained on)",
        )
    trusted: list[str] = []
    state = load_state_dict(found.model, where=where)
    if options.architecture is None:
        net, sizes = _alphaops_lstm(state, where)
    else:
        net, sizes = _user_architecture(options.architecture, where), {}
        trusted.append(f"architecture {options.architecture} (imported, trusted code)")
    _load_into(net, state, where)
    columns = read_feature_list(found.features, options, where=where)
    match = match_features(columns, mode=options.features, where=where)
    need = options.golden_rows + options.lookback - 1
    rows, frame, source = golden_batch(
        match,
        symbol=found.symbol,
        options=options.model_copy(update={"golden_rows": need}),
        data=data,
        where=where,
    )
    batch = windows(rows, options.lookback)
    scaled = batch
    affine: tuple[list[float], list[float]] | None = None
    if found.scaler is not None:
        require_trust(found.scaler, scan_file(found.scaler), options)
        affine = read_scaler(found.scaler, rows, where=str(found.scaler), limits=options.limits)
        scaled = batch * np.asarray(affine[0]) + np.asarray(affine[1])
        trusted.append("pickle (scaler) in the sandboxed loader")
    legacy = _torch_scores(net, scaled)
    model = _export(net, options.lookback, len(match.columns))
    if affine is not None:
        model = fold_scaler(model, scale=affine[0], offset=affine[1])
    golden = np.ascontiguousarray(batch, dtype=np.float32)
    parity, _ = parity_of(model, golden, legacy, tolerance=options.parity_tolerance, where=where)
    import torch

    return Converted(
        symbol=found.symbol,
        model_type=found.model_type,
        onnx=model,
        columns=match.columns,
        spec=match.spec,
        classes=class_order([str(i) for i in range(legacy.shape[1])], options.classes, where=where),
        golden=golden,
        golden_window=window_of(frame),
        parity=parity,
        golden_source=source,
        layout=found.layout,
        source=found.model,
        files=source_files([found.model, *found.sidecars]),
        trusted_code=trusted,
        timeframe=options.timeframe,
        horizon=options.horizon,
        lookback=options.lookback,
        params={f"architecture_{k}": v for k, v in sizes.items()},
        library_versions={"torch": torch.__version__},
    )
