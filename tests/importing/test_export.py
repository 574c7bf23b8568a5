"""Export for legacy bots: flat files and a latest-symlink tree, read back by the importer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from lightgbm import LGBMClassifier

from alphaops.core.errors import IntegrityError
from alphaops.core.home import AlphaOpsHome
from alphaops.importing import GoldenData, ImportOptions, export_version, import_legacy
from alphaops.inference import OnnxSession
from alphaops.registry import open_registry
from alphaops.registry.bundle import sha256_bytes

from .conftest import COLUMNS, Frame, save_legacy


def _two_versions(tmp_path: Path, data: Frame, golden: GoldenData, home: AlphaOpsHome) -> None:
    for seed in (1, 2):
        model = LGBMClassifier(n_estimators=10 * seed, verbose=-1, random_state=seed)
        folder = save_legacy(tmp_path / f"src{seed}", model.fit(data.X, data.y)).parent
        with open_registry(home) as reg:
            import_legacy(folder, ImportOptions(trust_pickle=True), reg, golden)


def test_export_writes_flat_files_and_a_tree_whose_latest_link_moves(
    tmp_path: Path, btc_features: Frame, golden: GoldenData, home: AlphaOpsHome
) -> None:
    _two_versions(tmp_path, btc_features, golden, home)
    dest = tmp_path / "bot_models"
    with open_registry(home) as reg:
        first = export_version(reg, "BTCUSDT/lightgbm/1", dest)
        second = export_version(reg, "BTCUSDT/lightgbm/2", dest)
        bundle = reg.load("BTCUSDT/lightgbm/2")
    tree = dest / "BTCUSDT" / "lightgbm"
    assert first.latest == second.latest == tree / "latest"
    assert (tree / "latest").readlink() == Path("2")
    assert sorted(p.name for p in tree.iterdir()) == ["1", "2", "latest"]
    flat = (dest / "BTCUSDT_lightgbm.onnx").read_bytes()
    assert flat == (bundle.path / "model.onnx").read_bytes()
    meta = json.loads((dest / "BTCUSDT_lightgbm_metadata.json").read_text())
    assert meta["source"] == "BTCUSDT/lightgbm/2"
    assert meta["features"] == COLUMNS
    assert meta["classes"] == ["LOSS", "WIN"]
    assert meta["onnx_sha256"] == sha256_bytes(flat)
    # What a legacy bot does: load the flat file with onnxruntime and feed raw features.
    probs = OnnxSession(flat, classes=2, input_name=meta["input"]["name"]).run(
        np.ascontiguousarray(btc_features.X[-5:], dtype=np.float32)
    )
    np.testing.assert_allclose(probs, bundle.predict(btc_features.X[-5:]), atol=1e-6)
    assert not list(dest.glob(".*tmp*"))
    assert not list(tree.glob(".*tmp*"))


def test_exported_flat_files_import_back_with_zero_parity_difference(
    tmp_path: Path, btc_features: Frame, golden: GoldenData, home: AlphaOpsHome
) -> None:
    _two_versions(tmp_path, btc_features, golden, home)
    dest = tmp_path / "flat"
    with open_registry(home) as reg:
        export_version(reg, "BTCUSDT/lightgbm/2", dest, layout="flat", name="BTCUSDT_exported")
        (back,) = import_legacy(dest, ImportOptions(), reg, golden)
    assert back.version.ref == "BTCUSDT/lightgbm/3"  # the metadata names the model type
    assert back.parity_max_abs_diff == 0.0


def test_a_version_folder_holding_another_model_is_never_overwritten(
    tmp_path: Path, btc_features: Frame, golden: GoldenData, home: AlphaOpsHome
) -> None:
    _two_versions(tmp_path, btc_features, golden, home)
    dest = tmp_path / "tree"
    stale = dest / "BTCUSDT" / "lightgbm" / "1"
    stale.mkdir(parents=True)
    (stale / "model.onnx").write_bytes(b"something else")
    with open_registry(home) as reg, pytest.raises(IntegrityError, match="immutable"):
        export_version(reg, "BTCUSDT/lightgbm/1", dest, layout="tree")
    assert (stale / "model.onnx").read_bytes() == b"something else"


def test_cli_export(
    tmp_path: Path,
    btc_features: Frame,
    golden: GoldenData,
    home: AlphaOpsHome,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from alphaops.cli import main

    _two_versions(tmp_path, btc_features, golden, home)
    dest = tmp_path / "cli"
    args = ["--home", str(home.root), "export", "BTCUSDT/lightgbm/1", str(dest), "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["latest"] == str(dest / "BTCUSDT" / "lightgbm" / "latest")
    assert (dest / "BTCUSDT_lightgbm.onnx").is_file()
