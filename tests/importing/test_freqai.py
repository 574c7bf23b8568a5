"""FreqAI model folders, built the way FreqAI's data drawer saves them, from real candles."""

from __future__ import annotations

import json
from pathlib import Path

import joblib  # type: ignore[import-untyped]
import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier
from sklearn.preprocessing import MinMaxScaler

from alphaops.core.errors import UntrustedCodeError
from alphaops.core.home import AlphaOpsHome
from alphaops.importing import ImportOptions, import_freqai, plan_freqai
from alphaops.registry import open_registry
from alphaops.runtime import load_model

from .conftest import COLUMNS, Frame

STAMP = 1735689600
NAMES = [f"%-{c.replace('_', '-')}_BTC/USDT_1h" for c in COLUMNS]
OPTIONS = ImportOptions(trust_pickle=True, classes=("LOSS", "WIN"))


def _drawer(root: Path, data: Frame, *, pipeline: bool) -> tuple[LGBMClassifier, MinMaxScaler]:
    """Write user_data/models/<identifier> as FreqAI does; return the model and its scaler."""
    name = f"cb_btc_{STAMP}"
    folder = root / f"sub-train-BTC_{STAMP}"
    folder.mkdir(parents=True)
    raw = pd.DataFrame(data.X, columns=NAMES)
    scaler = MinMaxScaler(feature_range=(-1, 1)).fit(raw)
    scaled = pd.DataFrame(scaler.transform(raw), columns=NAMES)
    labels = np.where(data.y == 1, "up", "down")
    model = LGBMClassifier(n_estimators=25, num_leaves=7, verbose=-1).fit(scaled, labels)
    meta: dict[str, object] = {
        "training_features_list": NAMES,
        "label_list": ["&s-up_or_down"],
        "model_filename": name,
        "data_path": str(folder),
        "training_size": len(scaled),
    }
    if pipeline:  # newer FreqAI: a fitted pipeline object
        joblib.dump(scaler, folder / f"{name}_feature_pipeline.pkl")
    else:  # older FreqAI: normalisation bounds as numbers in the metadata
        for i, column in enumerate(NAMES):
            meta[f"{column}_max"] = float(scaler.data_max_[i])
            meta[f"{column}_min"] = float(scaler.data_min_[i])
    joblib.dump(model, folder / f"{name}_model.joblib")
    (folder / f"{name}_metadata.json").write_text(json.dumps(meta))
    scaled.to_pickle(folder / f"{name}_trained_df.pkl")
    pd.DataFrame({"date": data.frame["timestamp"]}).to_pickle(
        folder / f"{name}_trained_dates_df.pkl"
    )
    pairs = {"BTC/USDT": {"model_filename": name, "trained_timestamp": STAMP, "extras": {}}}
    (root / "pair_dictionary.json").write_text(json.dumps(pairs))
    return model, scaler


@pytest.mark.parametrize("pipeline", [False, True], ids=["bounds-in-metadata", "pipeline-pickle"])
def test_freqai_folder_imports_with_normalisation_folded_in(
    tmp_path: Path, btc_features: Frame, home: AlphaOpsHome, pipeline: bool
) -> None:
    root = tmp_path / "user_data" / "models" / "lgbm-classifier"
    model, scaler = _drawer(root, btc_features, pipeline=pipeline)
    (plan,) = plan_freqai(root, ImportOptions())
    described = plan.to_dict()
    assert (described["symbol"], described["model_type"]) == ("BTCUSDT", "lightgbm")
    assert described["features"] == NAMES
    assert "loading it needs --trust-pickle" in described["problems"]
    with open_registry(home) as reg:
        with pytest.raises(UntrustedCodeError):
            import_freqai(root, ImportOptions(), reg)
        (imported,) = import_freqai(root, OPTIONS, reg)
        served = load_model(reg, imported.version.key, imported.version.version)
    manifest = imported.version.manifest
    assert manifest.feature_spec is None  # FreqAI features arrive as ready rows
    assert manifest.params["freqai_trained_at"] == STAMP
    assert manifest.provenance is not None
    assert manifest.provenance.layout == "freqai"
    assert manifest.provenance.parity is not None
    assert manifest.provenance.parity.max_abs_diff <= 1e-4
    raw = btc_features.X[-20:]
    scaled = scaler.transform(pd.DataFrame(raw, columns=NAMES))
    want = model.predict_proba(pd.DataFrame(scaled, columns=NAMES))
    np.testing.assert_allclose(served.run(raw.astype(np.float32)), want, atol=1e-4)


def test_cli_freqai_dry_run_then_import(
    tmp_path: Path, btc_features: Frame, home: AlphaOpsHome, capsys: pytest.CaptureFixture[str]
) -> None:
    from alphaops.cli import main

    root = tmp_path / "models" / "lgbm-classifier"
    _drawer(root, btc_features, pipeline=False)
    base = ["--home", str(home.root), "import", "freqai", str(root)]
    assert main([*base, "--dry-run"]) == 0
    table = capsys.readouterr().out
    assert "BTCUSDT" in table
    assert "nothing was loaded" in table
    assert main([*base, "--trust-pickle", "--classes", "LOSS,WIN", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["imported"][0]["ref"] == "BTCUSDT/lightgbm/1"
