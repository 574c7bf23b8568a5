"""Torch state dicts, flat ONNX + metadata files and SYMBOL/TYPE/VERSION trees."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import joblib  # type: ignore[import-untyped]
import numpy as np
import onnxmltools
import pytest
import torch
from lightgbm import LGBMClassifier
from onnxmltools.convert.common.data_types import FloatTensorType
from sklearn.preprocessing import StandardScaler

from alphaops.core.errors import IncompatibleModelError, IntegrityError, UsageError
from alphaops.core.home import AlphaOpsHome
from alphaops.importing import GoldenData, ImportOptions, import_legacy, plan_legacy
from alphaops.importing._flat_onnx import windows
from alphaops.registry import open_registry
from alphaops.runtime import load_model
from alphaops.training._nets import BiLSTMAttention

from .conftest import COLUMNS, Frame

LOOKBACK = 12


def _train_lstm(data: Frame, scaler: StandardScaler, net: torch.nn.Module) -> torch.nn.Module:
    X = windows(scaler.transform(data.X[-600:]), LOOKBACK).astype(np.float32)
    y = torch.from_numpy(data.y[-600:][LOOKBACK - 1 :].astype(np.int64))
    torch.manual_seed(0)
    optimiser = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(15):
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(X)), y)
        loss.backward()
        optimiser.step()
    return net.eval()


def _save_torch_legacy(folder: Path, net: torch.nn.Module, scaler: StandardScaler) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "lstm_BTCUSDT.pth"
    state = {k: v for k, v in net.state_dict().items() if not k.startswith("scale.")}
    torch.save(state, path)
    joblib.dump(scaler, folder / "lstm_BTCUSDT_scaler.pkl")
    joblib.dump(COLUMNS, folder / "lstm_BTCUSDT_cols.pkl")
    return path


def test_lstm_state_dict_imports_into_the_alphaops_lstm_with_its_scaler(
    tmp_path: Path, btc_features: Frame, golden: GoldenData, home: AlphaOpsHome
) -> None:
    scaler = StandardScaler().fit(btc_features.X)
    torch.manual_seed(0)
    net = _train_lstm(btc_features, scaler, BiLSTMAttention(len(COLUMNS), 2, 8, 1, 0.0))
    path = _save_torch_legacy(tmp_path / "models", net, scaler)
    options = ImportOptions(trust_pickle=True, lookback=LOOKBACK)
    (plan,) = plan_legacy(path.parent, options)
    assert (plan.found.format, plan.found.model_type, plan.features) == (
        "torch_state",
        "lstm",
        tuple(COLUMNS),
    )
    with open_registry(home) as reg:
        (imported,) = import_legacy(path.parent, options, reg, golden)
        manifest = imported.version.manifest
        served = load_model(reg, imported.version.key, imported.version.version)
    assert manifest.input.kind == "sequence"
    assert manifest.params["architecture_hidden"] == 8
    assert manifest.provenance is not None
    assert manifest.provenance.parity is not None
    assert manifest.provenance.parity.max_abs_diff <= 1e-4
    raw = windows(btc_features.X[-40:], LOOKBACK)
    with torch.no_grad():
        scaled = torch.from_numpy(windows(scaler.transform(btc_features.X[-40:]), LOOKBACK))
        want = torch.softmax(net(scaled.float()), dim=-1).numpy()
    np.testing.assert_allclose(served.run(raw.astype(np.float32)), want, atol=1e-4)


def test_state_dict_of_another_network_needs_its_architecture_which_is_trusted_code(
    tmp_path: Path,
    btc_features: Frame,
    golden: GoldenData,
    home: AlphaOpsHome,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "mybot_nets.py").write_text(
        textwrap.dedent(
            """
            import torch
            from torch import nn

            class PriceLSTM(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.rnn = nn.LSTM(5, 6, batch_first=True)
                    self.out = nn.Linear(6, 3)

                def forward(self, x):
                    states, _ = self.rnn(x)
                    return self.out(states[:, -1])
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    from mybot_nets import PriceLSTM  # type: ignore[import-not-found]

    scaler = StandardScaler().fit(btc_features.X)
    torch.manual_seed(1)
    net = PriceLSTM()
    path = _save_torch_legacy(tmp_path / "models", net.eval(), scaler)
    options = ImportOptions(trust_pickle=True, lookback=LOOKBACK, classes=("SELL", "HOLD", "BUY"))
    with open_registry(home) as reg:
        with pytest.raises(IncompatibleModelError, match="--architecture"):
            import_legacy(path.parent, options, reg, golden)
        trusted = options.model_copy(update={"architecture": "mybot_nets:PriceLSTM"})
        (imported,) = import_legacy(path.parent, trusted, reg, golden)
    provenance = imported.version.manifest.provenance
    assert provenance is not None
    assert (
        provenance.trusted_code[0] == "architecture mybot_nets:PriceLSTM (imported, trusted code)"
    )
    assert imported.version.manifest.label.class_order == ["SELL", "HOLD", "BUY"]


def test_full_pickled_torch_model_and_truncated_state_dict_are_refused(
    tmp_path: Path, golden: GoldenData, home: AlphaOpsHome
) -> None:
    full = tmp_path / "full"
    full.mkdir()
    torch.save(BiLSTMAttention(5, 2, 4, 1, 0.0), full / "lstm_BTCUSDT.pth")
    joblib.dump(COLUMNS, full / "lstm_BTCUSDT_cols.pkl")
    cut = tmp_path / "cut"
    cut.mkdir()
    torch.save(BiLSTMAttention(5, 2, 4, 1, 0.0).state_dict(), cut / "lstm_BTCUSDT.pth")
    data = (cut / "lstm_BTCUSDT.pth").read_bytes()
    (cut / "lstm_BTCUSDT.pth").write_bytes(data[: len(data) // 2])
    options = ImportOptions(lookback=LOOKBACK)
    with open_registry(home) as reg:
        with pytest.raises(UsageError, match="full pickled torch model"):
            import_legacy(full, options, reg, golden)
        with pytest.raises(IntegrityError, match="truncated or corrupted"):
            import_legacy(cut, options, reg, golden)


def _onnx_lightgbm(data: Frame) -> tuple[bytes, dict[str, object], LGBMClassifier, StandardScaler]:
    scaler = StandardScaler().fit(data.X)
    model = LGBMClassifier(n_estimators=20, num_leaves=7, verbose=-1).fit(
        scaler.transform(data.X), data.y
    )
    proto = onnxmltools.convert_lightgbm(
        model,
        initial_types=[("float_input", FloatTensorType([None, len(COLUMNS)]))],
        zipmap=False,
        target_opset=15,
    )
    meta = {
        "features": COLUMNS,
        "classes": [0, 1],
        "scaler": {"mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist()},
    }
    return proto.SerializeToString(), meta, model, scaler


def test_flat_onnx_with_metadata_imports_without_any_pickle(
    tmp_path: Path, btc_features: Frame, golden: GoldenData, home: AlphaOpsHome
) -> None:
    model_bytes, meta, model, scaler = _onnx_lightgbm(btc_features)
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "BTCUSDT_lightgbm.onnx").write_bytes(model_bytes)
    (folder / "BTCUSDT_lightgbm_metadata.json").write_text(json.dumps(meta))
    with open_registry(home) as reg:
        (imported,) = import_legacy(folder, ImportOptions(), reg, golden)
        served = load_model(reg, imported.version.key, imported.version.version)
    provenance = imported.version.manifest.provenance
    assert provenance is not None
    assert provenance.trusted_code == []
    raw = btc_features.X[-50:]
    want = model.predict_proba(scaler.transform(raw).astype(np.float32))
    np.testing.assert_allclose(served.run(raw.astype(np.float32)), want, atol=1e-4)


def test_bundle_tree_imports_every_version_and_reports_which_is_latest(
    tmp_path: Path, btc_features: Frame, golden: GoldenData, home: AlphaOpsHome
) -> None:
    model_bytes, meta, _, _ = _onnx_lightgbm(btc_features)
    root = tmp_path / "bundles"
    for version in ("v1", "v2"):
        folder = root / "BTCUSDT" / "lightgbm" / version
        folder.mkdir(parents=True)
        (folder / "model.onnx").write_bytes(model_bytes)
        (folder / "metadata.json").write_text(json.dumps(meta))
    os.symlink("v2", root / "BTCUSDT" / "lightgbm" / "latest")
    plans = plan_legacy(root, ImportOptions())
    assert [(p.found.version, p.found.latest) for p in plans] == [("v1", False), ("v2", True)]
    with open_registry(home) as reg:
        imported = import_legacy(root, ImportOptions(), reg, golden)
        assert [m.version.version for m in imported] == [1, 2]
        assert imported[1].version.manifest.params["source_latest"] is True
        assert reg.list_models()[0].symbol == "BTCUSDT"
