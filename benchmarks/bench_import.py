"""What importing a legacy model costs: the sandboxed loader child and the whole import.

A LightGBM classifier (100 trees) trained on real BTCUSDT 1h features is saved with joblib as
a self-learning bot would, then imported with ``--trust-pickle``:

- ``child_seconds_*``: one sandboxed loader run (start Python, unpickle, convert to ONNX,
  score the golden batch), the part that isolation adds;
- ``import_seconds_*``: discovery, golden batch from candles, child, parity, bundle, publish;
- ``dry_run_ms``: the plan (static pickle scan only).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import joblib  # type: ignore[import-untyped]
import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier

from alphaops.data.candles import Candles
from alphaops.features import FeaturePipeline, FeatureSpec
from alphaops.features.spec import MACD, RSI, Returns, Volatility
from alphaops.importing import GoldenData, ImportOptions, import_legacy, plan_legacy
from alphaops.importing._sandbox import SandboxLimits, run_loader
from alphaops.registry import open_registry

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "BTCUSDT-1h.parquet"
SPEC = FeatureSpec(features=(Returns(bars=1), Returns(bars=4), Volatility(), RSI(), MACD()))
REPEATS = 3


def run() -> dict[str, Any]:
    """Return the timings (seconds, medians of REPEATS runs)."""
    frame = pd.read_parquet(DATA).tail(5000)
    candles = Candles.from_frame(frame, symbol="BTCUSDT", timeframe="1h")
    features = FeaturePipeline(SPEC).transform(candles).dropna()
    X = features[list(SPEC.names)].to_numpy()
    close = candles.frame["close"].to_numpy()[-len(X) :]
    y = np.r_[close[1:] > close[:-1], False].astype(int)
    model = LGBMClassifier(n_estimators=100, verbose=-1).fit(X, y)
    golden = GoldenData(candles=lambda symbol, timeframe: candles)
    options = ImportOptions(trust_pickle=True)
    child, total, plan = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "models"
        folder.mkdir()
        joblib.dump(model, folder / "BTCUSDT_lightgbm.pkl")
        joblib.dump(list(SPEC.names), folder / "BTCUSDT_features.pkl")
        for i in range(REPEATS):
            started = time.perf_counter()
            run_loader(
                model=folder / "BTCUSDT_lightgbm.pkl",
                where="bench",
                limits=SandboxLimits(),
                golden=X[-256:],
            )
            child.append(time.perf_counter() - started)
            started = time.perf_counter()
            plan_legacy(folder, options)
            plan.append(time.perf_counter() - started)
            with open_registry(Path(tmp) / f"home{i}") as reg:
                started = time.perf_counter()
                import_legacy(folder, options, reg, golden)
                total.append(time.perf_counter() - started)
    return {
        "child_seconds_median": round(statistics.median(child), 3),
        "import_seconds_median": round(statistics.median(total), 3),
        "dry_run_ms_median": round(1000 * statistics.median(plan), 2),
        "trees": 100,
        "golden_rows": 256,
    }
