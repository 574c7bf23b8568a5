"""The live predictor: serve the champion, follow promotions and rollbacks, refuse bad versions."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from alphaops.core.errors import (
    DataValidationError,
    InsufficientDataError,
    IntegrityError,
    NotFoundError,
    UsageError,
)
from alphaops.data.candles import Candles
from alphaops.registry import Registry
from alphaops.registry.testing import publish_cleared
from alphaops.rollout import bucket
from alphaops.runtime import IncompatibleModelError, LivePredictor, ModelFailedError, Routing

from .conftest import ACTIONS, wait_until

ROW = np.array([0.1, -0.2, 0.3, 0.4])


def publish(registry: Registry, folder: Path) -> int:
    return publish_cleared(registry, folder).version


@pytest.fixture
def served(registry: Registry, make_bundle: Callable[..., Path]) -> Registry:
    """A registry whose BTCUSDT/logreg champion is version 1 (version 2 published, idle)."""
    publish(registry, make_bundle())
    publish(registry, make_bundle())
    registry.promote("BTCUSDT/logreg/1", expect=None, reason="first")
    return registry


@pytest.fixture
def live(served: Registry) -> Iterator[LivePredictor]:
    predictor = LivePredictor(served, "BTCUSDT/logreg", actions=ACTIONS, start=False)
    yield predictor
    predictor.close()


def expected_probabilities(registry: Registry, version: int, row: np.ndarray) -> np.ndarray:
    bundle = registry.load(f"BTCUSDT/logreg/{version}")
    out: np.ndarray = np.asarray(bundle.predict(row[np.newaxis]))[0]
    return out


def test_prediction_names_action_probabilities_and_the_serving_version(
    live: LivePredictor, served: Registry
) -> None:
    p = live.predict(ROW)
    want = expected_probabilities(served, 1, ROW)
    assert p.version == 1
    assert p.role == "champion"
    assert p.ref == "BTCUSDT/logreg/1"
    assert p.classes == ("down", "up")
    np.testing.assert_allclose(p.probabilities, want, rtol=1e-5)
    assert p.action == (1 if want[1] > want[0] else -1)
    assert p.action_name == ("BUY" if p.action == 1 else "SELL")


def test_promote_is_served_after_the_next_poll_and_old_champion_kept_as_previous(
    live: LivePredictor, served: Registry
) -> None:
    assert live.poll() is False  # nothing moved
    served.promote("BTCUSDT/logreg/2", expect=1, reason="better")
    assert live.predict(ROW).version == 1  # not yet polled
    assert live.poll() is True
    assert live.predict(ROW).version == 2
    assert live.versions() == {"champion": 2, "previous": 1}
    assert [e.kind for e in live.events][-2:] == ["loaded", "swapped"]


def test_rollback_swaps_to_the_cached_previous_without_reloading_it(
    live: LivePredictor, served: Registry
) -> None:
    served.promote("BTCUSDT/logreg/2", expect=1, reason="better")
    live.poll()
    loads = sum(e.kind == "loaded" for e in live.events)
    served.rollback("BTCUSDT/logreg", reason="worse live", expect=2)
    assert live.poll() is True
    assert live.predict(ROW).version == 1
    assert sum(e.kind == "loaded" for e in live.events) == loads


def test_corrupted_new_version_is_refused_and_the_old_one_keeps_serving(
    live: LivePredictor, served: Registry, tmp_path: Path
) -> None:
    model = next((tmp_path / "artifacts").rglob("BTCUSDT/logreg/2/model.onnx"))
    model.write_bytes(model.read_bytes()[:-7] + b"garbage")
    served.promote("BTCUSDT/logreg/2", expect=1, reason="bad upload")
    assert live.poll() is False
    assert live.predict(ROW).version == 1
    refused = [e for e in live.events if e.kind == "refused"]
    assert [e.version for e in refused] == [2]
    assert "model.onnx" in refused[0].detail
    assert live.poll() is False  # a refused version is not retried on every poll
    served.rollback("BTCUSDT/logreg", reason="revert the bad upload", expect=2)
    live.poll()
    assert live.predict(ROW).version == 1


def test_version_with_different_features_is_refused_as_incompatible(
    live: LivePredictor, served: Registry, make_bundle: Callable[..., Path]
) -> None:
    wide = publish(served, make_bundle(n_features=5))
    served.promote(f"BTCUSDT/logreg/{wide}", expect=1, reason="new features")
    live.poll()
    assert live.predict(ROW).version == 1
    (refused,) = [e for e in live.events if e.kind == "refused"]
    assert refused.version == wide
    assert "f4" in refused.detail


def test_champion_with_classes_that_have_no_action_cannot_start(served: Registry) -> None:
    with pytest.raises(IncompatibleModelError, match=r"classes \['down', 'up'\] have no trading"):
        LivePredictor(served, "BTCUSDT/logreg", start=False)


def test_model_without_champion_cannot_start(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    publish(registry, make_bundle())
    with pytest.raises(NotFoundError, match="no champion"):
        LivePredictor(registry, "BTCUSDT/logreg", actions=ACTIONS, start=False)


class _BlockingRow(dict[str, float]):
    """A feature mapping whose first read blocks until released (an in-flight prediction)."""

    def __init__(self, values: dict[str, float]) -> None:
        super().__init__(values)
        self.entered = threading.Event()
        self.release = threading.Event()

    def __getitem__(self, name: str) -> float:
        self.entered.set()
        assert self.release.wait(10)
        return super().__getitem__(name)


def test_in_flight_prediction_finishes_on_the_model_it_started_with(
    live: LivePredictor, served: Registry
) -> None:
    row = _BlockingRow({f"f{i}": float(v) for i, v in enumerate(ROW)})
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(live.predict(row)))
    worker.start()
    assert row.entered.wait(10)
    served.promote("BTCUSDT/logreg/2", expect=1, reason="swap mid-call")
    assert live.poll() is True
    row.release.set()
    worker.join(10)
    assert result[0].version == 1
    assert live.predict(ROW).version == 2


class _BrokenSession:
    def run(self, *args: object) -> list[np.ndarray]:
        raise RuntimeError("simulated onnxruntime failure")


def _break_champion(live: LivePredictor) -> None:
    # The only way to make a verified model fail at inference is to replace its session.
    slot = live._slot
    live._slot = replace(slot, champion=replace(slot.champion, session=_BrokenSession()))


def test_inference_failure_falls_back_to_previous_and_records_it(
    live: LivePredictor, served: Registry
) -> None:
    served.promote("BTCUSDT/logreg/2", expect=1, reason="new")
    live.poll()
    _break_champion(live)
    p = live.predict(ROW)
    assert (p.version, p.role) == (1, "fallback")
    (event,) = [e for e in live.events if e.kind == "fallback"]
    assert "simulated onnxruntime failure" in event.detail


def test_strict_mode_raises_on_inference_failure_instead_of_falling_back(
    served: Registry,
) -> None:
    served.promote("BTCUSDT/logreg/2", expect=1, reason="new")
    live = LivePredictor(served, "BTCUSDT/logreg", actions=ACTIONS, strict=True, start=False)
    _break_champion(live)
    with pytest.raises(ModelFailedError, match=r"BTCUSDT/logreg/2 failed at inference"):
        live.predict(ROW)


def test_inference_failure_without_any_fallback_raises_a_typed_error(live: LivePredictor) -> None:
    _break_champion(live)
    with pytest.raises(ModelFailedError, match="no fallback could serve"):
        live.predict(ROW)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (np.array([1.0, 2.0, 3.0]), r"shape \[3\].*expects \[4\]"),
        (np.array([1.0, np.nan, 3.0, 4.0]), r"NaN or infinite values in \['f1'\]"),
        (np.array(["a", "b", "c", "d"]), "dtype <U1"),
        ({"f0": 1.0, "f1": 2.0, "f2": 3.0, "x": 4.0}, r"missing \['f3'\], unexpected \['x'\]"),
        (pd.DataFrame([[1.0, 2, 3, 4]], columns=["f1", "f0", "f2", "f3"]), "names and order"),
    ],
)
def test_invalid_feature_rows_are_refused_with_the_offending_value(
    live: LivePredictor, rows: Any, message: str
) -> None:
    with pytest.raises(DataValidationError, match=message):
        live.predict(rows)


def test_mapping_frame_and_array_rows_give_the_same_prediction(live: LivePredictor) -> None:
    named = {f"f{i}": float(v) for i, v in enumerate(ROW)}
    frame = pd.DataFrame([ROW], columns=list(named))
    results = {live.predict(x).probabilities for x in (ROW, named, frame, ROW.astype(np.float32))}
    assert len(results) == 1


class _CloseFeatures:
    """A live feature source with the tiny bundles' names: last four log returns of close."""

    names = ("f0", "f1", "f2", "f3")
    warmup_bars = 5

    def transform(self, candles: Candles) -> pd.DataFrame:
        close = np.log(candles.frame["close"].to_numpy(np.float64))
        r = np.concatenate([[np.nan], np.diff(close)])
        cols = {f"f{i}": np.concatenate([[np.nan] * i, r[: len(r) - i]]) for i in range(4)}
        return pd.DataFrame({"timestamp": candles.frame["timestamp"], **cols})


def test_candles_are_turned_into_the_bundles_features_and_too_little_history_is_refused(
    served: Registry, load_real: Callable[[str, str], Candles]
) -> None:
    candles = load_real("BTCUSDT", "1h").tail(50)
    live = LivePredictor(
        served, "BTCUSDT/logreg", actions=ACTIONS, features=_CloseFeatures(), start=False
    )
    row = _CloseFeatures().transform(candles).iloc[-1][list(_CloseFeatures.names)]
    assert live.predict_candles(candles) == live.predict(row.to_numpy(np.float64))
    with pytest.raises(InsufficientDataError, match=r"needs the last 5 candles.*got 4"):
        live.predict_candles(candles.tail(4))


def test_candles_without_a_feature_spec_name_the_fix(
    live: LivePredictor, load_real: Callable[[str, str], Candles]
) -> None:
    with pytest.raises(UsageError, match="no feature spec"):
        live.predict_candles(load_real("BTCUSDT", "1h").tail(50))


def test_background_thread_follows_a_promotion(
    served: Registry, open_reg: Callable[[str], Registry]
) -> None:
    with LivePredictor(
        open_reg("bot"), "BTCUSDT/logreg", actions=ACTIONS, poll_interval_s=0.02
    ) as live:
        served.promote("BTCUSDT/logreg/2", expect=1, reason="new")
        wait_until(lambda: live.predict(ROW).version == 2)
        assert live.generation == served.generation()


def test_listening_follows_a_promotion_long_before_the_poll_interval_or_is_refused(
    served: Registry, open_reg: Callable[[str], Registry]
) -> None:
    bot = open_reg("bot")
    if served.database.dialect != "postgresql":
        with pytest.raises(UsageError, match="needs a PostgreSQL registry") as info:
            LivePredictor(bot, "BTCUSDT/logreg", actions=ACTIONS, listen=True)
        assert "drop listen=True" in info.value.fix
        return
    # A poll interval far beyond the wait below: only the NOTIFY can wake the thread in time.
    with LivePredictor(
        bot, "BTCUSDT/logreg", actions=ACTIONS, poll_interval_s=600, listen=True
    ) as live:
        wait_until(lambda: any(e.kind == "listening" for e in live.events))
        served.promote("BTCUSDT/logreg/2", expect=1, reason="new")
        wait_until(lambda: live.predict(ROW).version == 2, timeout_s=30)
        served.rollback("BTCUSDT/logreg", reason="back")
        wait_until(lambda: live.predict(ROW).version == 1, timeout_s=30)
    assert [e.kind for e in live.events if e.kind.startswith("listen")] == ["listening"]


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_lost_listen_connection_falls_back_to_polling(
    served: Registry, open_reg: Callable[[str], Registry]
) -> None:
    bot = open_reg("bot")
    with bot.database.read() as conn:
        since = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
    with LivePredictor(
        bot, "BTCUSDT/logreg", actions=ACTIONS, poll_interval_s=0.05, listen=True
    ) as live:
        wait_until(lambda: any(e.kind == "listening" for e in live.events))
        with bot.database.write() as conn:  # the server ends the listening session
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE query LIKE 'LISTEN %' AND backend_start >= :since"
                ),
                {"since": since},
            )
        wait_until(lambda: any(e.kind == "listen_failed" for e in live.events))
        served.promote("BTCUSDT/logreg/2", expect=1, reason="new")
        wait_until(lambda: live.predict(ROW).version == 2)


def test_canary_routes_keys_at_or_below_the_percentage_to_the_challenger(
    live: LivePredictor, served: Registry
) -> None:
    served.set_alias("BTCUSDT/logreg", "challenger", 2, reason="canary")
    live.poll()
    live.set_routing(Routing("r1", percentage=30))
    for key in range(200):
        p = live.predict(ROW, routing_key=key)
        in_canary = bucket("r1", key) <= 30
        assert (p.version, p.role) == ((2, "challenger") if in_canary else (1, "champion"))
    assert live.predict(ROW).role == "champion"  # no key: the champion


def test_shadow_challenger_sees_every_input_but_never_acts(
    live: LivePredictor, served: Registry
) -> None:
    served.set_alias("BTCUSDT/logreg", "challenger", 2, reason="shadow")
    live.poll()
    live.set_routing(Routing("r1", shadow=True))
    served_by = {live.predict(ROW * k, routing_key=k).version for k in range(20)}
    assert served_by == {1}
    assert len(live.shadow_log) == 20
    assert {(a.version, s.version, s.role) for a, s in live.shadow_log} == {(1, 2, "challenger")}


def test_routing_percentage_out_of_range_is_refused() -> None:
    with pytest.raises(UsageError, match="101"):
        Routing("r1", percentage=101)


def test_refused_version_raises_at_start_when_it_is_the_champion(
    served: Registry, tmp_path: Path
) -> None:
    model = next((tmp_path / "artifacts").rglob("BTCUSDT/logreg/1/model.onnx"))
    model.write_bytes(b"not onnx")
    with pytest.raises(IntegrityError, match=r"model\.onnx"):
        LivePredictor(served, "BTCUSDT/logreg", actions=ACTIONS, start=False)


def test_inference_failure_falls_back_to_the_champion_of_the_configured_simpler_type(
    served: Registry, make_bundle: Callable[..., Path]
) -> None:
    simple = publish_cleared(served, make_bundle(model_type="simple")).version
    served.promote(f"BTCUSDT/simple/{simple}", expect=None, reason="fallback model")
    live = LivePredictor(
        served, "BTCUSDT/logreg", actions=ACTIONS, fallback_type="simple", start=False
    )
    assert live.versions()["fallback"] == simple
    _break_champion(live)  # version 1 has no previous: only the simpler type can serve
    p = live.predict(ROW)
    assert (p.key, p.version, p.role) == (live.fallback_key, simple, "fallback")
    np.testing.assert_allclose(
        p.probabilities,
        np.asarray(served.load(f"BTCUSDT/simple/{simple}").predict(ROW[np.newaxis]))[0],
        rtol=1e-6,
    )
    assert any(e.kind == "fallback" and "BTCUSDT/simple" in e.detail for e in live.events)
    live.close()


def test_fallback_type_with_other_features_is_refused_and_never_serves(
    served: Registry, make_bundle: Callable[..., Path]
) -> None:
    other = publish_cleared(served, make_bundle(model_type="simple", n_features=3)).version
    served.promote(f"BTCUSDT/simple/{other}", expect=None, reason="wrong inputs")
    live = LivePredictor(
        served, "BTCUSDT/logreg", actions=ACTIONS, fallback_type="simple", start=False
    )
    assert "fallback" not in live.versions()
    assert any(e.kind == "refused" and "fallback BTCUSDT/simple" in e.detail for e in live.events)
    _break_champion(live)
    with pytest.raises(ModelFailedError, match="no fallback could serve"):
        live.predict(ROW)
    live.close()


def test_fallback_type_equal_to_the_served_type_is_refused(served: Registry) -> None:
    with pytest.raises(UsageError, match="fallback_type 'logreg' is the served model type"):
        LivePredictor(served, "BTCUSDT/logreg", fallback_type="logreg", start=False)


def test_new_versions_are_verified_in_a_helper_process_and_a_dead_helper_is_replaced(
    live: LivePredictor, served: Registry, make_bundle: Callable[..., Path]
) -> None:
    import os
    import signal

    assert live._fetcher is not None
    assert live._fetcher.pid is None  # the first load happened in the constructor
    served.promote("BTCUSDT/logreg/2", expect=1, reason="better")
    assert live.poll() is True
    helper = live._fetcher.pid
    assert helper is not None
    assert helper != os.getpid()
    assert live.predict(ROW).version == 2
    os.kill(helper, signal.SIGKILL)  # the helper dies between loads: the next starts a new one
    live._fetcher._process.wait(10)
    version = publish(served, make_bundle())
    served.promote(f"BTCUSDT/logreg/{version}", expect=2, reason="next")
    assert live.poll() is True
    assert live.predict(ROW).version == version
    assert live._fetcher.pid not in (None, helper)
    # A helper that cannot work (its registry cannot be opened, so it exits at start): this
    # thread loads instead, and says so.
    live._fetcher.close()
    live._fetcher._settings = {"database_url": "no-such-driver://", "artifacts": "unused",
                               "storage_options": {}}  # fmt: skip
    served.rollback("BTCUSDT/logreg", reason="back", expect=version)
    served.promote("BTCUSDT/logreg/1", expect=2, reason="the first again")
    assert live.poll() is True
    assert live.predict(ROW).version == 1
    assert [e.kind for e in live.events][-3:] == ["loader_failed", "loaded", "swapped"]
    live.close()
    assert live._fetcher.pid is None


def test_load_in_thread_needs_no_helper_process(
    served: Registry, make_bundle: Callable[..., Path]
) -> None:
    with LivePredictor(
        served, "BTCUSDT/logreg", actions=ACTIONS, start=False, load_in="thread"
    ) as live:
        served.promote("BTCUSDT/logreg/2", expect=1, reason="better")
        assert live.poll() is True
        assert live.predict(ROW).version == 2
        assert live._fetcher is None


BOT_WITHOUT_MAIN_GUARD = """
import pathlib, sys
import numpy as np
from alphaops.registry import open_registry
from alphaops.runtime import LivePredictor

runs = pathlib.Path(sys.argv[2])
runs.write_text(runs.read_text() + "ran\\n" if runs.exists() else "ran\\n")
registry = open_registry(sys.argv[1])
live = LivePredictor(registry, "BTCUSDT/logreg", actions={"down": -1, "up": 1}, start=False)
registry.promote("BTCUSDT/logreg/2", expect=1, reason="swap in a script")
live.poll()
print(live.predict(np.zeros(4)).version, live._fetcher.pid is not None)
live.close()
"""


def test_a_bot_script_without_a_main_guard_is_not_run_again_by_the_helper_process(
    tmp_path: Path, make_bundle: Callable[..., Path]
) -> None:
    import subprocess
    import sys

    from alphaops.registry import open_registry

    home = tmp_path / "home"
    with open_registry(home) as registry:
        publish(registry, make_bundle())
        publish(registry, make_bundle())
        registry.promote("BTCUSDT/logreg/1", expect=None, reason="first")
    script = tmp_path / "bot.py"
    script.write_text(BOT_WITHOUT_MAIN_GUARD)
    runs = tmp_path / "runs.txt"
    done = subprocess.run(
        [sys.executable, str(script), str(home), str(runs)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2", "True"]
    assert runs.read_text() == "ran\n"


BOT_THAT_STAYS = """
import sys, time
import numpy as np
from alphaops.registry import open_registry
from alphaops.runtime import LivePredictor

registry = open_registry(sys.argv[1])
live = LivePredictor(registry, "BTCUSDT/logreg", actions={"down": -1, "up": 1}, start=False)
registry.promote("BTCUSDT/logreg/2", expect=1, reason="swap")
live.poll()
print(live._fetcher.pid, flush=True)
while True:
    live.predict(np.zeros(4))
    time.sleep(0.01)
"""


def _gone(pid: int) -> bool:
    # Exited, or a zombie waiting for a reaper that this container may not run.
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in state


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_the_loading_helper_exits_when_the_bot_is_terminated_or_killed(
    tmp_path: Path, make_bundle: Callable[..., Path], how: str
) -> None:
    import signal
    import subprocess
    import sys

    from alphaops.registry import open_registry

    home = tmp_path / "home"
    with open_registry(home) as registry:
        publish(registry, make_bundle())
        publish(registry, make_bundle())
        registry.promote("BTCUSDT/logreg/1", expect=None, reason="first")
    with subprocess.Popen(
        [sys.executable, "-c", BOT_THAT_STAYS, str(home)], stdout=subprocess.PIPE, text=True
    ) as bot:
        try:
            assert bot.stdout is not None
            helper = int(bot.stdout.readline())
            assert not _gone(helper)
            bot.send_signal(getattr(signal, how))
            bot.wait(timeout=30)
            wait_until(lambda: _gone(helper), timeout_s=30)
        finally:
            if bot.poll() is None:
                bot.kill()
                bot.wait()
