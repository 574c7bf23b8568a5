"""Live actions follow the bundle's decision rule exactly as the gates' batch scoring does.

Real LightGBM bundles trained on real BTCUSDT candles (default decision rule: band, edge over
cost, hold = label horizon), streamed bar by bar through the LivePredictor on bars they never
saw, against ``BundlePredictor.score(...).actions`` on the same bars.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from alphaops.core.errors import InsufficientDataError
from alphaops.data.candles import Candles
from alphaops.features import FeatureSpec, LabelRule
from alphaops.registry import Registry, open_registry
from alphaops.registry.testing import record_passing_gates
from alphaops.runtime import LivePredictor, Routing, bars_of
from alphaops.scoring import BundlePredictor
from alphaops.training import TrainingJob
from alphaops.training.executor import publish_trained, train_job

TRAIN_BARS = 3000
KEY = "BTCUSDT/lightgbm"


@dataclass(frozen=True)
class Served:
    registry: Registry
    unseen: Candles


def window(candles: Candles, start: int, stop: int) -> Candles:
    return Candles.from_frame(candles.frame.iloc[start:stop], symbol="BTCUSDT", timeframe="1h")


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, load_real: Callable[[str, str], Candles]
) -> Iterator[Served]:
    btc = load_real("BTCUSDT", "1h").tail(TRAIN_BARS + 1400)
    train = window(btc, 0, TRAIN_BARS)
    registry = open_registry(tmp_path_factory.mktemp("decisions") / "home")
    for seed in (3, 4):  # version 1 and version 2
        job = TrainingJob(
            symbols=("BTCUSDT",), timeframe="1h", model="lightgbm", features=FeatureSpec.default(),
            label=LabelRule(kind="ternary", horizon=4, threshold=0.01),
            params={"n_estimators": 40}, seed=seed,
        )  # fmt: skip
        version = publish_trained(train_job(job, {"BTCUSDT": train}), registry)
        record_passing_gates(registry, version.ref)
    registry.promote(f"{KEY}/1", expect=None, reason="decision tests")
    yield Served(registry, window(btc, TRAIN_BARS, len(btc)))
    registry.close()


def batch_actions(served: Served, version: int, candles: Candles, start_ms: int) -> dict[int, int]:
    scores = BundlePredictor(served.registry.load(f"{KEY}/{version}")).score(
        candles, start_ms=start_ms
    )
    return dict(zip(scores.timestamps_ms.tolist(), scores.actions.tolist(), strict=True))


def test_live_actions_equal_the_batch_actions_bar_for_bar(served: Served) -> None:
    candles = window(served.unseen, 0, 1400)
    bundle = served.registry.load(f"{KEY}/1")
    predictor = BundlePredictor(bundle)
    assert not predictor.decision.is_argmax  # the bundle carries the default rule
    live_actions: dict[int, int] = {}
    argmax: dict[int, int] = {}
    with LivePredictor(served.registry, KEY, start=False) as live:
        for bar in bars_of(candles):
            try:
                got = live.on_bar(bar)
            except InsufficientDataError:
                continue
            live_actions[bar.timestamp_ms] = got.action
            argmax[bar.timestamp_ms] = int(np.argmax(got.probabilities)) - 1  # SELL/HOLD/BUY
    first = min(live_actions)
    expected = batch_actions(served, 1, candles, first)
    assert live_actions == expected
    assert len(expected) > 800
    # The rule matters here: argmax would have traded far more on the same bars.
    changes = {
        "rule": np.abs(np.diff(list(expected.values()))).sum(),
        "argmax": np.abs(np.diff(list(argmax.values()))).sum(),
    }
    assert 0 < changes["rule"] < changes["argmax"] / 2


def test_a_repeated_bar_is_decided_once_and_a_swapped_in_champion_starts_flat(
    served: Served,
) -> None:
    candles = window(served.unseen, 0, 1400)
    bars = bars_of(candles)
    first_ms = bars[600].timestamp_ms
    shadowed = batch_actions(served, 2, candles, first_ms)  # version 2's path from bar 600
    # Swap where version 2's path (as a shadow) holds a position that a fresh path does not:
    # only there does starting flat show.
    swap_at = next(
        i
        for i in range(900, 1300)
        if shadowed[bars[i].timestamp_ms]
        != batch_actions(served, 2, candles, bars[i].timestamp_ms)[bars[i].timestamp_ms]
    )
    live_actions: dict[int, int] = {}
    shadow_actions: dict[int, int] = {}
    served.registry.set_alias(KEY, "challenger", 2, reason="shadow before the swap")
    try:
        with LivePredictor(served.registry, KEY, start=False, follow_rollouts=False) as live:
            live.set_routing(Routing("shadow-decisions", shadow=True))
            live.warm_up(window(served.unseen, 0, 600))
            for i, bar in enumerate(bars[600:], start=600):
                if i == swap_at:
                    served.registry.promote(f"{KEY}/2", expect=1, reason="swap mid-stream")
                    assert live.poll() is True
                    live.set_routing(None)
                got = live.on_bar(bar)
                # The bot's rolling window on the same bar: the same bar, the same decision.
                again = live.predict_candles(window(served.unseen, max(0, i - 700), i + 1))
                assert (again.action, again.version) == (got.action, got.version)
                live_actions[bar.timestamp_ms] = got.action
                if i < swap_at:
                    acted, shadow = live.shadow_log[-1]
                    assert (acted.version, shadow.version) == (1, 2)
                    shadow_actions[bar.timestamp_ms] = shadow.action
    finally:
        if served.registry.aliases(KEY).get("champion") == 2:
            served.registry.promote(f"{KEY}/1", expect=2, reason="restore")
        if "challenger" in served.registry.aliases(KEY):
            served.registry.remove_alias(KEY, "challenger", reason="restore")
    swap_ms = bars[swap_at].timestamp_ms
    before = {t: a for t, a in live_actions.items() if t < swap_ms}
    after = {t: a for t, a in live_actions.items() if t >= swap_ms}
    assert before == {
        t: a for t, a in batch_actions(served, 1, candles, first_ms).items() if t < swap_ms
    }
    # As a shadow, version 2 decided every bar on its own path, exactly like its batch.
    assert shadow_actions == {t: a for t, a in shadowed.items() if t < swap_ms}
    # As the new champion it starts flat at the swap bar.
    assert after == batch_actions(served, 2, candles, swap_ms)
