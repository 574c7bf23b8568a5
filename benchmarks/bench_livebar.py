"""Per-bar cost of the live path: the streaming entry vs recomputing the window vs bare ORT.

For a LightGBM on the default feature spec and an LSTM (lookback 32), both trained on BTCUSDT
1h and served from a real registry, each new closed bar is scored three ways in the same run:

* ``stream``: ``LivePredictor.on_bar(bar)`` end to end (validation, incremental features,
  routing, inference, the Prediction);
* ``window``: the input contract's one-shot ``latest(window)`` over the last ``warmup_bars``
  candles plus inference, i.e. recomputing every feature per bar (what ``predict_candles``
  did before it streamed);
* ``bare_ort``: onnxruntime alone on a ready input (the floor).

Figures are p50/p99 microseconds per bar over bars the models never saw, and ratios.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from alphaops.data.candles import Candles
from alphaops.data.readers import read_candles
from alphaops.features import FeatureSpec, LabelRule
from alphaops.registry import open_registry
from alphaops.registry.testing import record_passing_gates
from alphaops.runtime import LivePredictor, bars_of
from alphaops.scoring import InputContract

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "BTCUSDT-1h.parquet"
TRAIN_BARS = 4000
BARS = 400


def _pct(samples: list[float], q: float) -> float:
    return float(np.percentile(np.array(samples) * 1e6, q))


def _timed(fn: Callable[[int], Any], n: int) -> list[float]:
    out = []
    for i in range(n):
        began = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - began)
    return out


def _one(model: str, params: dict[str, Any], lookback: int, home: Path) -> dict[str, float]:
    from alphaops.training import TrainingJob
    from alphaops.training.executor import publish_trained, train_job

    candles = read_candles(DATA, symbol="BTCUSDT", timeframe="1h").tail(TRAIN_BARS + 1500)
    frame = candles.frame
    train = Candles.from_frame(frame.iloc[:TRAIN_BARS], symbol="BTCUSDT", timeframe="1h")
    job = TrainingJob(
        symbols=("BTCUSDT",), timeframe="1h", model=model, features=FeatureSpec.default(),
        label=LabelRule(kind="ternary", horizon=4, threshold=0.01), params=params,
        lookback=lookback, seed=1,
    )  # fmt: skip
    with open_registry(home) as reg:
        version = publish_trained(train_job(job, {"BTCUSDT": train}), reg)
        record_passing_gates(reg, version.ref)
        reg.promote(version.ref, expect=None, reason="bench")
        bundle = reg.load(version.ref)
        contract = InputContract.from_bundle(bundle)
        unseen = frame.iloc[TRAIN_BARS:]
        warm = Candles.from_frame(unseen.iloc[:1000], symbol="BTCUSDT", timeframe="1h")
        rest = Candles.from_frame(unseen.iloc[1000:], symbol="BTCUSDT", timeframe="1h")
        bars = bars_of(rest)[:BARS]
        need = contract.warmup_bars
        with LivePredictor(reg, f"BTCUSDT/{model}", start=False) as live:
            live.warm_up(warm)
            stream = _timed(lambda i: live.on_bar(bars[i]), len(bars))
            history = unseen.iloc[: 1000 + len(bars)]
            session = live._slot.champion.session  # the serving session, for the window path

            def window(i: int) -> None:
                end = 1000 + i + 1
                w = Candles.from_frame(
                    history.iloc[end - need : end], symbol="BTCUSDT", timeframe="1h"
                )
                session.run(contract.latest(w))

            recompute = _timed(window, min(len(bars), 100))
            ready = contract.latest(
                Candles.from_frame(history.iloc[-need:], symbol="BTCUSDT", timeframe="1h")
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        bare = ort.InferenceSession(
            (bundle.path / "model.onnx").read_bytes(), options, providers=["CPUExecutionProvider"]
        )
        name = bundle.manifest.input.name
        bare_t = _timed(lambda i: bare.run(None, {name: ready}), 2000)
    s50, w50, b50 = _pct(stream, 50), _pct(recompute, 50), _pct(bare_t, 50)
    return {
        f"{model}_stream_p50_us": s50,
        f"{model}_stream_p99_us": _pct(stream, 99),
        f"{model}_window_p50_us": w50,
        f"{model}_bare_ort_p50_us": b50,
        f"{model}_window_over_stream": w50 / s50,
        f"{model}_stream_over_bare_ort": s50 / b50,
    }


def run() -> dict[str, object]:
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        figures |= _one("lightgbm", {"n_estimators": 100}, 32, Path(tmp) / "a")
        figures |= _one("lstm", {"hidden": 32, "max_epochs": 2}, 32, Path(tmp) / "b")
    figures["goal_lightgbm_stream_p50_us"] = 100
    figures["goal_lstm_stream_p50_us"] = 1000
    return figures
