"""Legacy joblib/pickle models: the trust boundary, conversion, parity, typed errors."""

from __future__ import annotations

import json
import os
import pickle
import socket
from pathlib import Path

import joblib  # type: ignore[import-untyped]
import numpy as np
import pytest
from lightgbm import LGBMClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from alphaops.core.errors import (
    ExternalServiceError,
    GateFailedError,
    IncompatibleModelError,
    IntegrityError,
    NotFoundError,
    ParityError,
    UntrustedCodeError,
    UsageError,
)
from alphaops.core.home import AlphaOpsHome
from alphaops.importing import (
    GoldenData,
    ImportOptions,
    SandboxLimits,
    import_legacy,
    plan_legacy,
)
from alphaops.registry import open_registry
from alphaops.registry.bundle import sha256_bytes
from alphaops.runtime import load_model

from .conftest import COLUMNS, Frame, OpensSocket, Runs, WritesMarker, save_legacy

TRUSTED = ImportOptions(trust_pickle=True)


def _lightgbm(data: Frame) -> LGBMClassifier:
    model = LGBMClassifier(n_estimators=30, num_leaves=15, verbose=-1, random_state=1)
    return model.fit(data.X, data.y)


def test_dry_run_shows_mapping_without_loading_the_pickle(
    tmp_path: Path, btc_features: Frame
) -> None:
    save_legacy(tmp_path / "models", _lightgbm(btc_features))
    marker = tmp_path / "ran"
    with (tmp_path / "models" / "ETHUSDT_rf.pkl").open("wb") as handle:
        pickle.dump(WritesMarker(marker), handle)
    plans = {
        p.found.model.name: p.to_dict() for p in plan_legacy(tmp_path / "models", ImportOptions())
    }
    btc = plans["BTCUSDT_lightgbm.pkl"]
    assert (btc["symbol"], btc["model_type"], btc["format"]) == ("BTCUSDT", "lightgbm", "pickle")
    assert btc["features"] == COLUMNS
    assert btc["input"] == "alphaops features"
    assert "lightgbm.sklearn.LGBMClassifier" in btc["imports"]
    assert btc["needs_trust_pickle"]
    assert "loading it needs --trust-pickle" in btc["problems"]
    assert "builtins.exec" in plans["ETHUSDT_rf.pkl"]["imports"]
    assert not marker.exists()


def test_pickle_is_never_loaded_without_the_trust_flag(
    tmp_path: Path, golden: GoldenData, home: AlphaOpsHome
) -> None:
    marker = tmp_path / "ran"
    folder = save_legacy(tmp_path / "models", WritesMarker(marker)).parent
    with open_registry(home) as reg, pytest.raises(UntrustedCodeError) as caught:
        import_legacy(folder, ImportOptions(), reg, golden)
    assert "builtins.exec" in caught.value.details["imports"]
    assert "--trust-pickle" in (caught.value.fix or "")
    assert not marker.exists()


def test_trusted_pickle_runs_only_in_the_child_process(
    tmp_path: Path, golden: GoldenData, home: AlphaOpsHome
) -> None:
    marker = tmp_path / "ran"
    folder = save_legacy(tmp_path / "models", WritesMarker(marker)).parent
    with open_registry(home) as reg:
        with pytest.raises(IntegrityError) as caught:
            import_legacy(folder, TRUSTED, reg, golden)
        assert reg.list_models() == []
    assert caught.value.details["loader_error"] == "not_a_model"
    child_pid = int(marker.read_text())
    assert child_pid != os.getpid()


def test_pickle_that_opens_a_socket_is_refused_in_the_child(
    tmp_path: Path, golden: GoldenData, home: AlphaOpsHome
) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(0.5)
        folder = save_legacy(tmp_path / "models", OpensSocket(server.getsockname()[1])).parent
        with open_registry(home) as reg, pytest.raises(IntegrityError) as caught:
            import_legacy(folder, TRUSTED, reg, golden)
        assert caught.value.details["loader_error"] == "sandbox"
        assert "socket" in caught.value.message
        with pytest.raises(TimeoutError):
            server.accept()  # nothing ever connected


def test_lightgbm_import_is_a_candidate_with_provenance_parity_and_serves(
    tmp_path: Path, btc_features: Frame, golden: GoldenData, home: AlphaOpsHome
) -> None:
    legacy = _lightgbm(btc_features)
    path = save_legacy(tmp_path / "models", legacy)
    with open_registry(home) as reg:
        (imported,) = import_legacy(path.parent, TRUSTED, reg, golden)
        version = imported.version
        manifest = version.manifest
        assert (str(version.key), version.version) == ("BTCUSDT/lightgbm", 1)
        provenance = manifest.provenance
        assert provenance is not None
        assert provenance.kind == "imported"
        assert provenance.source == str(path)
        assert provenance.sha256 == sha256_bytes(path.read_bytes())
        assert [Path(f.path).name for f in provenance.files] == [
            "BTCUSDT_lightgbm.pkl",
            "BTCUSDT_features.pkl",
        ]
        assert provenance.parity is not None
        assert provenance.parity.rows == 256
        assert provenance.parity.max_abs_diff <= 1e-4
        assert "sandboxed loader" in provenance.trusted_code[0]
        assert manifest.feature_spec is not None
        assert [f.name for f in manifest.features] == COLUMNS
        assert manifest.label.class_order == ["LOSS", "WIN"]
        with pytest.raises(NotFoundError):
            reg.resolve("BTCUSDT/lightgbm@champion")
        with pytest.raises(GateFailedError):
            reg.promote("BTCUSDT/lightgbm/1", expect=None, reason="imported")
        served = load_model(reg, version.key, 1)
    rows = btc_features.X[-64:]
    got = served.run(np.ascontiguousarray(rows, dtype=np.float32))
    want = legacy.predict_proba(rows.astype(np.float32))
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_random_forest_with_pickled_scaler_has_the_scaler_folded_in(
    tmp_path: Path, btc_features: Frame, golden: GoldenData, home: AlphaOpsHome
) -> None:
    scaler = StandardScaler().fit(btc_features.X)
    forest = RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0)
    forest.fit(scaler.transform(btc_features.X), btc_features.y)
    path = save_legacy(tmp_path / "models", forest, name="BTCUSDT_rf")
    joblib.dump(scaler, tmp_path / "models" / "BTCUSDT_scaler.pkl")
    with open_registry(home) as reg:
        (imported,) = import_legacy(path.parent, TRUSTED, reg, golden)
        served = load_model(reg, imported.version.key, imported.version.version)
    raw = btc_features.X[-32:]
    want = forest.predict_proba(scaler.transform(raw))
    np.testing.assert_allclose(served.run(raw.astype(np.float32)), want, atol=1e-4)
    assert imported.version.manifest.provenance is not None
    names = [Path(f.path).name for f in imported.version.manifest.provenance.files]
    assert "BTCUSDT_scaler.pkl" in names


def test_parity_above_tolerance_refuses_the_import_and_publishes_nothing(
    tmp_path: Path, btc_features: Frame, golden: GoldenData, home: AlphaOpsHome
) -> None:
    model = LogisticRegression(max_iter=200).fit(btc_features.X, btc_features.y)
    path = save_legacy(tmp_path / "models", model, name="BTCUSDT_logreg")
    strict = ImportOptions(trust_pickle=True, parity_tolerance=1e-12)
    with open_registry(home) as reg:
        with pytest.raises(ParityError) as caught:
            import_legacy(path.parent, strict, reg, golden)
        assert reg.list_models() == []
    assert caught.value.details["max_abs_diff"] > 1e-12


def test_feature_sidecar_that_disagrees_with_the_model_names_the_columns(
    tmp_path: Path, btc_features: Frame, golden: GoldenData, home: AlphaOpsHome
) -> None:
    frame = btc_features.frame[COLUMNS]
    model = RandomForestClassifier(n_estimators=5, max_depth=3).fit(frame, btc_features.y)
    path = save_legacy(tmp_path / "models", model, name="BTCUSDT_rf")
    wrong = [c if c != "rsi_14" else "rsi_21" for c in COLUMNS]
    joblib.dump(wrong, tmp_path / "models" / "BTCUSDT_features.pkl")
    with open_registry(home) as reg, pytest.raises(IncompatibleModelError) as caught:
        import_legacy(path.parent, TRUSTED, reg, golden)
    assert caught.value.details == {"missing": ["rsi_14"], "unexpected": ["rsi_21"]}


def test_unknown_columns_are_refused_when_alphaops_features_are_required(
    tmp_path: Path, btc_features: Frame, golden: GoldenData, home: AlphaOpsHome
) -> None:
    path = save_legacy(tmp_path / "models", _lightgbm(btc_features))
    joblib.dump([*COLUMNS[:-1], "my_signal"], tmp_path / "models" / "BTCUSDT_features.pkl")
    options = ImportOptions(trust_pickle=True, features="alphaops")
    with open_registry(home) as reg, pytest.raises(IncompatibleModelError) as caught:
        import_legacy(path.parent, options, reg, golden)
    assert caught.value.details["columns"] == ["my_signal"]


def test_truncated_files_are_integrity_errors_with_and_without_trust(
    tmp_path: Path, btc_features: Frame, golden: GoldenData, home: AlphaOpsHome
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    data = pickle.dumps(_lightgbm(btc_features))
    (plain / "BTCUSDT_lightgbm.pkl").write_bytes(data[: len(data) // 2])
    joblib.dump(COLUMNS, plain / "BTCUSDT_features.pkl")
    joblib_file = save_legacy(tmp_path / "joblib", _lightgbm(btc_features))
    joblib_file.write_bytes(joblib_file.read_bytes()[:-200])
    with open_registry(home) as reg:
        with pytest.raises(IntegrityError) as untrusted:
            import_legacy(plain, ImportOptions(), reg, golden)
        with pytest.raises(IntegrityError) as trusted:
            import_legacy(joblib_file.parent, TRUSTED, reg, golden)
    assert untrusted.value.details["file"].endswith("BTCUSDT_lightgbm.pkl")
    assert "truncated" in untrusted.value.message
    assert trusted.value.details["file"] == str(joblib_file)


def test_cli_dry_run_then_import_with_trust(
    tmp_path: Path,
    btc_features: Frame,
    home: AlphaOpsHome,
    data_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from alphaops.cli import main

    folder = save_legacy(tmp_path / "models", _lightgbm(btc_features)).parent
    base = ["--home", str(home.root), "import", "legacy", str(folder)]
    assert main([*base, "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["models"][0]["needs_trust_pickle"] is True
    assert main(base) == 1
    assert "untrusted_code" in capsys.readouterr().err
    candles = data_dir / "BTCUSDT-1h.parquet"
    assert main([*base, "--trust-pickle", "--candles", str(candles), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["imported"][0]["ref"] == "BTCUSDT/lightgbm/1"


def test_importing_the_child_module_installs_no_audit_hook_here() -> None:
    import importlib

    importlib.import_module("alphaops.importing._child")
    left, right = socket.socketpair()  # would be refused if the sandbox hook were installed
    left.close()
    right.close()


@pytest.mark.parametrize(
    ("code", "error", "says"),
    [
        ("while True: pass", IntegrityError, "killed by signal"),
        ("x = bytearray(3 << 30)", IntegrityError, "memory"),
        ("import time; time.sleep(60)", ExternalServiceError, "longer than 6 s"),
        ("import subprocess; subprocess.run(['true'])", IntegrityError, "subprocess.Popen"),
    ],
    ids=["cpu-time", "address-space", "wall-clock", "new-process"],
)
def test_the_child_is_held_to_its_limits(
    tmp_path: Path,
    golden: GoldenData,
    home: AlphaOpsHome,
    code: str,
    error: type[Exception],
    says: str,
) -> None:
    folder = save_legacy(tmp_path / "models", Runs(code)).parent
    limits = SandboxLimits(cpu_seconds=2, memory_bytes=2 << 30, wall_seconds=6)
    options = ImportOptions(trust_pickle=True, limits=limits)
    with open_registry(home) as reg, pytest.raises(error, match=says):
        import_legacy(folder, options, reg, golden)


def test_ready_feature_columns_need_golden_rows_and_then_import(
    tmp_path: Path, btc_features: Frame, home: AlphaOpsHome
) -> None:
    import pandas as pd

    names = [f"signal_{i}" for i in range(len(COLUMNS))]
    rows = pd.DataFrame(btc_features.X, columns=names)
    model = LGBMClassifier(n_estimators=15, verbose=-1).fit(rows, btc_features.y)
    folder = tmp_path / "models"
    folder.mkdir()
    joblib.dump(model, folder / "BTCUSDT_lightgbm.pkl")
    (folder / "BTCUSDT_features.json").write_text(json.dumps(names))
    with open_registry(home) as reg:
        with pytest.raises(UsageError, match="--golden"):
            import_legacy(folder, TRUSTED, reg, GoldenData())
        (imported,) = import_legacy(folder, TRUSTED, reg, GoldenData(rows=rows))
    manifest = imported.version.manifest
    assert manifest.feature_spec is None
    assert [f.name for f in manifest.features] == names
    assert manifest.provenance is not None
    assert manifest.provenance.parity is not None
    assert manifest.provenance.parity.batch == "rows given by the user"


def test_keras_files_are_refused_with_the_converter_named(
    tmp_path: Path, home: AlphaOpsHome
) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "BTCUSDT_lstm.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    (plan,) = plan_legacy(folder, ImportOptions())
    assert plan.found.format == "keras"
    assert "tf2onnx" in plan.problems[0]
    with open_registry(home) as reg, pytest.raises(UsageError, match="tf2onnx"):
        import_legacy(folder, TRUSTED, reg, GoldenData())
