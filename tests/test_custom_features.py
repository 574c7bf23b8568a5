"""Users' own features: import path + params + source hash, batch = stream, typed errors."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from alphaops.core.errors import LookaheadError, SpecError
from alphaops.data.candles import Candles
from alphaops.features import (
    RSI,
    CustomFeature,
    FeaturePipeline,
    FeatureSpec,
    FeatureStream,
    Returns,
    check_lookahead,
)
from alphaops.features._audit import stream_rows

SOURCE = '''
import numpy as np


def body(bars, window=10):
    """Close against the mean of the last ``window`` closes, from each bar's own window."""
    close = np.asarray(bars.close)
    out = np.full(close.size, np.nan)
    for i in range(window - 1, close.size):
        out[i] = close[i] / close[i - window + 1 : i + 1].mean() - 1.0
    return out


def range_ratio(bars):
    return (np.asarray(bars.high) - np.asarray(bars.low)) / np.asarray(bars.close)


def peek(bars):
    close = np.asarray(bars.close)
    out = np.full(close.size, np.nan)
    out[:-1] = close[1:] / close[:-1] - 1.0
    return out


def wrong_shape(bars):
    return np.zeros(3)


def not_numbers(bars):
    return ["a"] * len(bars)


def edits(bars):
    bars.close[0] = 0.0
    return np.zeros(len(bars))


NOT_CALLABLE = 3
'''


@pytest.fixture
def user_module(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Write the user's feature module ``myfeat_<n>`` and return a path builder."""
    name = f"myfeat_{abs(hash(tmp_path)) % 10**8}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(SOURCE))
    sys.path.insert(0, str(tmp_path))
    importlib.invalidate_caches()
    yield lambda function: f"{name}:{function}"
    sys.path.remove(str(tmp_path))
    sys.modules.pop(name, None)


@pytest.fixture
def btc(load_real: Callable[[str, str], Candles]) -> Candles:
    return load_real("BTCUSDT", "1h").tail(3000)


def test_a_custom_feature_computes_in_batch_and_streams_bit_for_bit_on_real_candles(
    user_module: Callable[[str], str], btc: Candles
) -> None:
    body = CustomFeature(path=user_module("body"), warmup=20, params={"window": 20})
    spec = FeatureSpec(features=(Returns(bars=1), body, RSI(period=14)))
    assert body.name == "body_20"
    assert spec.custom == (body,)
    batch = FeaturePipeline(spec).transform(btc)[list(spec.names)].to_numpy(np.float64)
    close = btc.frame["close"].to_numpy()
    expected = close[-1] / close[-20:].mean() - 1.0
    assert batch[-1, 1] == pytest.approx(expected, rel=1e-12)
    assert np.isnan(batch[:19, 1]).all()
    assert np.isfinite(batch[19:, 1]).all()
    live = stream_rows(spec, btc)
    same = (live == batch) | (np.isnan(live) & np.isnan(batch))
    assert same.all()
    latest = FeaturePipeline(spec).latest(btc.tail(spec.warmup_bars))
    assert latest["body_20"] == batch[-1, 1]
    assert check_lookahead(spec, btc).passed


def test_the_spec_round_trips_and_hashes_the_function_source(
    user_module: Callable[[str], str], tmp_path: Path
) -> None:
    feature = CustomFeature(path=user_module("range_ratio"), warmup=1, column="hl_range")
    spec = FeatureSpec(features=(feature,))
    data = spec.to_dict()
    assert data["features"][0]["code"] == feature.code
    assert len(feature.code or "") == 64
    again = FeatureSpec.from_dict(data)
    assert again == spec
    assert again.spec_hash == spec.spec_hash
    other = FeatureSpec(
        features=(CustomFeature(path=user_module("body"), warmup=10, column="hl_range"),)
    )
    assert other.spec_hash != spec.spec_hash
    # The user edits the function: a fresh spec hashes differently, the recorded one is refused.
    module_name = feature.path.partition(":")[0]
    path = tmp_path / f"{module_name}.py"
    path.write_text(path.read_text().replace("/ np.asarray(bars.close)", "/ np.asarray(bars.low)"))
    sys.modules.pop(module_name)
    importlib.invalidate_caches()
    edited = FeatureSpec(features=(CustomFeature(path=feature.path, warmup=1, column="hl_range"),))
    assert edited.spec_hash != spec.spec_hash
    with pytest.raises(SpecError, match="source code changed since this spec was recorded"):
        FeatureSpec.from_dict(data)


def test_the_training_config_hash_follows_the_function_code(
    user_module: Callable[[str], str],
) -> None:
    from alphaops.features import LabelRule
    from alphaops.training import TrainingJob

    def job(path: str) -> TrainingJob:
        features = FeatureSpec(features=(Returns(bars=1), CustomFeature(path=path, warmup=10)))
        return TrainingJob(
            symbols=("BTCUSDT",),
            timeframe="1h",
            model="lightgbm",
            features=features,
            label=LabelRule(horizon=4, threshold=0.01),
        )

    assert job(user_module("body")).config_hash != job(user_module("range_ratio")).config_hash
    assert job(user_module("body")).config_hash == job(user_module("body")).config_hash


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("no_colon_here", "is not 'module:function'"),
        ("surely_not_a_module_xyz:f", "cannot import module 'surely_not_a_module_xyz'"),
        ("{mod}:missing", "has no 'missing'"),
        ("{mod}:NOT_CALLABLE", "names a int, not a function"),
        ("{mod}:np", "names a module, not a function"),
    ],
)
def test_a_bad_path_is_a_spec_error_naming_the_value_and_the_fix(
    user_module: Callable[[str], str], path: str, message: str
) -> None:
    path = path.format(mod=user_module("x").partition(":")[0])
    with pytest.raises(SpecError, match=message) as caught:
        FeatureSpec.from_dict({"features": [{"kind": "custom", "path": path, "warmup": 3}]})
    assert path in str(caught.value)
    assert "Fix:" in str(caught.value)


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("wrong_shape", r"returned shape \[3\] for 3000 bars; expected \[3000\]"),
        ("not_numbers", "returned list, not numbers"),
        ("edits", "raised ValueError"),
    ],
)
def test_a_bad_output_is_a_spec_error_naming_the_feature(
    user_module: Callable[[str], str], btc: Candles, function: str, message: str
) -> None:
    spec = FeatureSpec(features=(CustomFeature(path=user_module(function), warmup=5),))
    with pytest.raises(SpecError, match=message) as caught:
        FeaturePipeline(spec).transform(btc)
    assert function in str(caught.value)
    assert "Fix:" in str(caught.value)


def test_a_feature_that_reads_the_future_is_refused_with_its_bars(
    user_module: Callable[[str], str], btc: Candles
) -> None:
    spec = FeatureSpec(features=(RSI(), CustomFeature(path=user_module("peek"), warmup=2)))
    with pytest.raises(LookaheadError, match="feature peek reads the future") as caught:
        check_lookahead(spec, btc)
    first = str(np.datetime64(int(btc.timestamps_ms[1]), "ms").astype("datetime64[s]")) + "Z"
    assert first in str(caught.value)
    assert caught.value.details["features"] == ["peek"]
    assert isinstance(caught.value, SpecError)


def test_a_feature_declaring_too_short_a_warmup_is_told_so(
    user_module: Callable[[str], str], btc: Candles
) -> None:
    # body over 20 closes declared with warmup 10: the live window gives NaN, batch a value.
    short = CustomFeature(path=user_module("body"), warmup=10, params={"window": 20})
    with pytest.raises(LookaheadError, match="needs more history than its warmup_bars"):
        check_lookahead(FeatureSpec(features=(short,)), btc)


def test_the_live_stream_recomputes_a_custom_feature_on_its_window(
    user_module: Callable[[str], str], btc: Candles
) -> None:
    spec = FeatureSpec(features=(CustomFeature(path=user_module("range_ratio"), warmup=3),))
    stream = FeatureStream(spec)
    frame = btc.frame.tail(4)
    out = [stream.update(r.high, r.low, r.close, r.volume)[0] for r in frame.itertuples()]
    assert np.isnan(out[:2]).all()
    last = frame.iloc[-1]
    assert out[-1] == (last.high - last.low) / last.close
