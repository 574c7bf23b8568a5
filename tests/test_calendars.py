"""Session calendars on the real S&P 500 daily and EUR/USD hourly files: gaps, windows,
Sharpe annualisation, fills, the store and the ``data import/check --calendar`` commands."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alphaops.cli import main
from alphaops.core.errors import DataConflictError, DataValidationError, SpecError
from alphaops.core.timeframes import Timeframe
from alphaops.data import Calendar, Candles, CandleStore, validate_frame
from alphaops.datasets import SequenceWindows, segment_ids
from alphaops.gates.backtest import backtest, buy_and_hold, periods_per_year
from alphaops.gates.policy import BacktestPolicy
from alphaops.scoring import Scores


@pytest.fixture(scope="module")
def spx_frame(data_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(data_dir / "SPX-1d.parquet")


@pytest.fixture(scope="module")
def fx_frame(data_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(data_dir / "EURUSD-1h.parquet")


@pytest.fixture(scope="module")
def spx(spx_frame: pd.DataFrame) -> Candles:
    return Candles.from_frame(spx_frame, symbol="SPX", timeframe="1d", calendar="XNYS")


# -- gaps ------------------------------------------------------------------------------------


def test_spx_daily_on_the_nyse_calendar_has_no_gaps_where_24_7_saw_979(
    spx_frame: pd.DataFrame,
) -> None:
    around_the_clock = validate_frame(spx_frame, symbol="SPX", timeframe="1d")
    assert around_the_clock.gaps.count == 979  # every weekend and holiday, as today
    nyse = validate_frame(spx_frame, symbol="SPX", timeframe="1d", calendar="XNYS")
    assert nyse.ok
    assert str(nyse.calendar) == "XNYS"
    assert (nyse.gaps.count, nyse.gaps.missing_bars) == (0, 0)
    assert nyse.to_dict()["calendar"] == "XNYS"


def test_a_missing_nyse_session_is_a_real_gap(spx_frame: pd.DataFrame) -> None:
    # Drop the 2008-09-29 session (a Monday): the weekend before it is still no gap.
    dropped = spx_frame[spx_frame["timestamp"] != pd.Timestamp("2008-09-29", tz="UTC")]
    report = validate_frame(dropped, symbol="SPX", timeframe="1d", calendar="XNYS")
    assert report.gaps.count == 1
    gap = report.gaps.gaps[0]
    assert (gap.after, gap.before, gap.missing_bars) == (
        pd.Timestamp("2008-09-26", tz="UTC"),
        pd.Timestamp("2008-09-30", tz="UTC"),
        1,
    )


def test_eurusd_hourly_on_the_fx_calendar_reports_christmas_not_weekends(
    fx_frame: pd.DataFrame,
) -> None:
    around_the_clock = validate_frame(fx_frame, symbol="EURUSD", timeframe="1h")
    assert around_the_clock.gaps.count >= 52  # every weekend
    fx = validate_frame(fx_frame, symbol="EURUSD", timeframe="1h", calendar="fx")
    assert fx.ok
    # The only hours missing inside FX sessions are the Christmas holiday: the Sunday
    # 17:00 New York bar of 24 December and 25 December 07:00-21:00 UTC.
    assert [(g.after, g.missing_bars) for g in fx.gaps.gaps] == [
        (pd.Timestamp("2017-12-22 21:00", tz="UTC"), 1),
        (pd.Timestamp("2017-12-25 07:00", tz="UTC"), 14),
    ]


def test_fx_sessions_follow_new_york_17_00_across_daylight_saving() -> None:
    fx = Calendar.parse("fx")
    hour = 3_600_000

    def ms(text: str) -> int:
        return pd.Timestamp(text, tz="UTC").value // 1_000_000

    winter = fx.expected(ms("2017-01-06 20:00"), ms("2017-01-08 23:00"), "1h")
    summer = fx.expected(ms("2017-07-07 19:00"), ms("2017-07-09 22:00"), "1h")
    as_text = [str(pd.Timestamp(t, unit="ms")) for t in (*winter, *summer)]
    assert as_text == [
        "2017-01-06 20:00:00",
        "2017-01-06 21:00:00",  # Friday's last bar closes 22:00 UTC (17:00 EST)
        "2017-01-08 22:00:00",  # Sunday opens 22:00 UTC
        "2017-01-08 23:00:00",
        "2017-07-07 19:00:00",
        "2017-07-07 20:00:00",  # summer: closes 21:00 UTC (17:00 EDT)
        "2017-07-09 21:00:00",
        "2017-07-09 22:00:00",
    ]
    assert winter[1] - winter[0] == hour


def test_candles_outside_the_calendar_are_refused_with_the_fix(
    spx_frame: pd.DataFrame, fx_frame: pd.DataFrame
) -> None:
    saturday = spx_frame.tail(1).copy()
    saturday["timestamp"] = pd.to_datetime(["2016-12-31"], utc=True).as_unit("ms")
    frame = pd.concat([spx_frame, saturday], ignore_index=True)
    with pytest.raises(DataValidationError, match=r"off_calendar: 1 candle\(s\).*XNYS") as info:
        Candles.from_frame(frame, symbol="SPX", timeframe="1d", calendar="XNYS")
    assert "--calendar" in info.value.fix or "--calendar" in str(info.value)
    # FX hours declared as NYSE: most of them fall outside its sessions.
    report = validate_frame(fx_frame, symbol="EURUSD", timeframe="1h", calendar="XNYS")
    assert [p.check for p in report.problems] == ["off_calendar"]
    assert report.problems[0].count > 4000


def test_an_unknown_calendar_is_a_spec_error_naming_it() -> None:
    with pytest.raises(SpecError, match="calendar 'NYSEX' is not understood") as info:
        Calendar.parse("NYSEX")
    assert "XNYS" in info.value.fix
    assert Calendar.parse("24/7") == Calendar.parse(None) == Calendar.parse("crypto")
    assert Calendar.parse("xnys") == Calendar("XNYS")


# -- windows ---------------------------------------------------------------------------------


def test_sequence_windows_on_daily_spx_split_only_at_real_gaps(spx: Candles) -> None:
    features = np.log(spx.frame[["close"]].to_numpy()).astype(np.float32)
    plain = segment_ids(spx.timestamps_ms, spx.timeframe)
    with pytest.raises(Exception, match="the longest segment has 5"):
        SequenceWindows.build(features, lookback=32, segments=plain)
    segments = segment_ids(spx.timestamps_ms, spx.timeframe, calendar=spx.calendar)
    assert np.unique(segments).tolist() == [0]  # 18 years, no missing session
    windows = SequenceWindows.build(features, lookback=32, segments=segments)
    assert windows.shape == (len(spx) - 31, 32, 1)
    # A missing session splits the run there, and only there.
    keep = np.ones(len(spx), dtype=bool)
    keep[2000] = False
    split = segment_ids(spx.timestamps_ms[keep], spx.timeframe, calendar="XNYS")
    assert np.flatnonzero(np.diff(split)).tolist() == [1999]


def test_fx_hourly_segments_run_across_weekends(fx_frame: pd.DataFrame) -> None:
    eurusd = Candles.from_frame(fx_frame, symbol="EURUSD", timeframe="1h", calendar="fx")
    segments = segment_ids(eurusd.timestamps_ms, eurusd.timeframe, calendar=eurusd.calendar)
    assert int(segments.max()) + 1 == 3  # split only at the two Christmas gaps
    plain = segment_ids(eurusd.timestamps_ms, Timeframe.parse("1h"))
    assert int(plain.max()) + 1 > 50


# -- Sharpe and fills ------------------------------------------------------------------------


def test_periods_per_year_follow_the_calendar() -> None:
    hour, day = Timeframe.parse("1h"), Timeframe.parse("1d")
    assert periods_per_year(day, "XNYS") == 252
    assert periods_per_year(hour, "fx") == 260 * 24
    assert periods_per_year(hour, "24/7") == periods_per_year(hour) == 365 * 24
    assert periods_per_year(day) == 365
    # Intraday NYSE bars: about seven hourly bars per 6.5-hour session (early closes fewer).
    assert 6.9 * 252 < periods_per_year(hour, "XNYS") < 7 * 252


def _scores(candles: Candles, actions: np.ndarray) -> Scores:
    # BUY=+1 / HOLD=0 / SELL=-1 as one-hot probabilities over the model classes.
    classes = ("SELL", "HOLD", "BUY")
    probabilities = np.zeros((actions.size, 3), dtype=np.float32)
    probabilities[np.arange(actions.size), actions + 1] = 1.0
    return Scores(candles.timestamps_ms[: actions.size].copy(), probabilities, classes)


def test_backtest_on_spx_annualises_with_252_sessions_and_fills_at_next_open(
    spx: Candles,
) -> None:
    rng = np.random.default_rng(7)
    actions = rng.choice([0, 1], size=len(spx) - 10)
    scores = _scores(spx, actions)
    result = backtest(spx, scores)  # auto: XNYS has session gaps, so next-open fills
    assert result.fill == "next_open"
    m = result.metrics
    assert m["periods_per_year"] == 252
    assert m["sharpe"] == pytest.approx(m["sharpe_per_bar"] * math.sqrt(252))
    # Position decided at bar t's close is held from open[t+1] to open[t+2].
    opens = spx.frame["open"].to_numpy()
    t = int(np.flatnonzero(actions == 1)[5])
    expected = opens[t + 2] / opens[t + 1] - 1.0
    entered = actions[t - 1] != 1
    cost = (10 + 5) / 10_000 if entered else 0.0
    assert result.net_returns[t] == pytest.approx(expected - cost)
    # Close fills book a different result: the overnight gap is not tradable.
    closes = backtest(spx, scores, BacktestPolicy(fill="close"))
    assert closes.fill == "close"
    assert closes.metrics["total_return"] != pytest.approx(m["total_return"], rel=1e-3)
    benchmark = buy_and_hold(spx, scores.timestamps_ms)
    assert benchmark.fill == "next_open"
    # Held from the open after the first scored bar to the open after the bar after the last.
    whole = opens[len(actions) + 1] / opens[1] - 1.0
    first = opens[2] / opens[1] - 1.0  # the entry cost is taken from the first bar's return
    assert benchmark.metrics["total_return"] == pytest.approx(
        (1 + first - 15 / 10_000) / (1 + first) * (1 + whole) - 1.0, rel=1e-9
    )


def test_24_7_markets_keep_close_fills_by_default(
    load_real: Callable[[str, str], Candles],
) -> None:
    btc = load_real("BTCUSDT", "1h").tail(500)
    actions = np.tile([1, 1, 0, 0], 120)
    result = backtest(btc, _scores(btc, actions))
    assert result.fill == "close"
    assert result.metrics["periods_per_year"] == 8760
    closes = btc.frame["close"].to_numpy()
    assert result.net_returns[1] == pytest.approx(closes[2] / closes[1] - 1.0)


# -- the store and the commands --------------------------------------------------------------


def test_the_store_records_the_calendar_and_counts_gaps_with_it(
    tmp_path: Path, spx: Candles, spx_frame: pd.DataFrame
) -> None:
    store = CandleStore(tmp_path / "store")
    store.append(spx.between(None, pd.Timestamp("2010-01-01", tz="UTC")))
    assert store.calendar("SPX", "1d") == Calendar("XNYS")
    assert json.loads((tmp_path / "store" / "SPX" / "1d.meta.json").read_text()) == {
        "calendar": "XNYS"
    }
    # Undeclared (24/7) candles take the stored calendar; another declared one is refused.
    rest = Candles.from_frame(spx_frame, symbol="SPX", timeframe="1d")
    assert store.append(rest).added == len(spx) - len(
        store.load("SPX", "1d", end="2010-01-01T00:00Z")
    )
    with pytest.raises(DataConflictError, match="stored with the XNYS calendar"):
        store.append(rest.tail(5).with_calendar("fx"))
    loaded = store.load("SPX", "1d")
    assert (loaded.calendar, loaded.gaps.count) == (Calendar("XNYS"), 0)
    [entry] = store.list()
    assert (entry.calendar, entry.gaps, entry.to_dict()["calendar"]) == (
        Calendar("XNYS"),
        0,
        "XNYS",
    )
    assert store.check("SPX", "1d", calendar="24/7").gaps.count == 979  # this check only
    assert store.calendar("SPX", "1d") == Calendar("XNYS")
    store.declare_calendar("SPX", "1d", "24/7")
    assert not (tmp_path / "store" / "SPX" / "1d.meta.json").exists()
    saturday = spx_frame.tail(1).copy()
    saturday["timestamp"] = pd.to_datetime(["2016-12-31"], utc=True).as_unit("ms")
    store.append(Candles.from_frame(saturday, symbol="SPX", timeframe="1d"))  # fine on 24/7
    with pytest.raises(DataValidationError, match="off_calendar"):
        store.declare_calendar("SPX", "1d", "XNYS")
    assert store.calendar("SPX", "1d") == Calendar("24/7")  # nothing recorded


def test_data_import_and_check_take_a_calendar(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = str(tmp_path / "home")
    spx_file = tmp_path / "SPX-1d.parquet"
    fx_file = tmp_path / "EURUSD-1h.parquet"
    shutil.copy(data_dir / "SPX-1d.parquet", spx_file)
    shutil.copy(data_dir / "EURUSD-1h.parquet", fx_file)

    def run_json(*args: str) -> object:
        code = main(["--home", home, *args, "--json"])
        out, err = capsys.readouterr()
        assert code == 0, err or out
        return json.loads(out)

    run_json("data", "import", str(spx_file), "--calendar", "XNYS")
    run_json("data", "import", str(fx_file), "--calendar", "fx")
    spx_report = run_json("data", "check", "SPX", "1d")
    assert isinstance(spx_report, dict)
    assert (spx_report["calendar"], spx_report["gaps"]["count"]) == ("XNYS", 0)
    fx_report = run_json("data", "check", "EURUSD", "1h")
    assert isinstance(fx_report, dict)
    assert (fx_report["calendar"], fx_report["gaps"]["count"]) == ("fx", 2)
    as_crypto = run_json("data", "check", "SPX", "1d", "--calendar", "24/7")
    assert isinstance(as_crypto, dict)
    assert as_crypto["gaps"]["count"] == 979
    listed = run_json("data", "list")
    assert isinstance(listed, list)
    assert {(e["symbol"], e["calendar"], e["gaps"]) for e in listed} == {
        ("SPX", "XNYS", 0),
        ("EURUSD", "fx", 2),
    }
    code = main(["--home", home, "data", "check", "SPX", "1d", "--calendar", "NOPE", "--json"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "NOPE" in out + err


def test_daily_index_labels_count_trading_sessions_so_weekends_do_not_empty_them(
    data_dir: Path,
) -> None:
    from alphaops.features import LabelRule, make_labels

    frame = pd.read_parquet(data_dir / "SPX-1d.parquet")
    rule = LabelRule(kind="ternary", horizon=5, threshold=0.01)
    nyse = Candles.from_frame(frame, symbol="SPX", timeframe="1d", calendar="XNYS")
    labelled = make_labels(nyse, rule).frame
    assert len(labelled) == len(frame) - 5  # every session but the last five
    # A label's horizon is five sessions: a Friday's ends the next Friday.
    friday = labelled[labelled["timestamp"].dt.day_of_week == 4].iloc[0]
    assert (friday["label_end"] - friday["timestamp"]).days == 7
    always_open = Candles.from_frame(frame, symbol="SPX", timeframe="1d")
    assert len(make_labels(always_open, rule).frame) < len(labelled) // 10


def test_a_daily_index_sequence_model_is_served_across_weekends_live_as_in_the_gates(
    spx: Candles, tmp_path: Path
) -> None:
    # The bundle records its market's calendar: the gates' windows and the live input both
    # run across weekends and holidays, and only a missing session breaks a window.
    from alphaops.features import FeatureSpec, LabelRule
    from alphaops.registry import open_registry
    from alphaops.scoring import BundlePredictor
    from alphaops.training import TrainingJob, publish_trained, train_job

    cut = len(spx) - 250
    train = Candles.from_frame(spx.frame.iloc[:cut], symbol="SPX", timeframe="1d", calendar="XNYS")
    job = TrainingJob(
        symbols=("SPX",), timeframe="1d", model="lstm", features=FeatureSpec.default(),
        label=LabelRule.balanced("ternary", horizon=5), params={"hidden": 8, "max_epochs": 1},
        lookback=16, seed=1,
    )  # fmt: skip
    with open_registry(tmp_path / "home") as registry:
        version = publish_trained(train_job(job, {"SPX": train}), registry)
        assert version.manifest.data.calendar == "XNYS"
        predictor = BundlePredictor(registry.load(version.ref))
    start = cut - predictor.contract.warmup_bars
    unseen = Candles.from_frame(
        spx.frame.iloc[start:], symbol="SPX", timeframe="1d", calendar="XNYS"
    )
    stamps, windows = predictor.contract.history(unseen)
    # Every session from the first full window on has one: weekends and holidays break none.
    assert stamps.size == len(unseen) - predictor.contract.warmup_bars + 1 > 250
    live = predictor.contract.live()
    index = {int(t): i for i, t in enumerate(stamps)}
    compared = 0
    for bar in range(len(unseen)):
        live.extend(
            Candles.from_frame(
                unseen.frame.iloc[bar : bar + 1], symbol="SPX", timeframe="1d", calendar="XNYS"
            )
        )
        at = int(unseen.timestamps_ms[bar])
        if at in index:
            assert np.array_equal(live.batch()[0], windows.batch(np.array([index[at]]))[0])
            compared += 1
    assert compared == stamps.size


def test_the_gates_judge_a_daily_index_model_on_its_calendar_even_from_undeclared_candles(
    spx: Candles, tmp_path: Path
) -> None:
    # A bundle trained on NYSE sessions is gated on them: next-open fills, 252 sessions a
    # year, and labels over trading sessions (not 0 labelled bars), whether the candles come
    # declared (the store) or bare (a library user's frame).
    from alphaops.features import FeatureSpec, LabelRule
    from alphaops.gates.runner import run_gates
    from alphaops.registry import open_registry
    from alphaops.scoring import BundlePredictor
    from alphaops.training import TrainingJob, publish_trained, train_job

    cut = len(spx) - 300
    train = Candles.from_frame(spx.frame.iloc[:cut], symbol="SPX", timeframe="1d", calendar="XNYS")
    job = TrainingJob(
        symbols=("SPX",), timeframe="1d", model="lightgbm", features=FeatureSpec.default(),
        label=LabelRule.balanced("ternary", horizon=5), params={"n_estimators": 20}, seed=1,
    )  # fmt: skip
    with open_registry(tmp_path / "home") as registry:
        version = publish_trained(train_job(job, {"SPX": train}), registry)
        predictor = BundlePredictor(registry.load(version.ref))
    bare = Candles.from_frame(spx.frame, symbol="SPX", timeframe="1d")
    for candles in (spx, bare):
        run = run_gates(
            predictor, candles, version=version.version, manifest_sha256=version.manifest_sha256
        )
        backtest = run.record.gate("backtest").data["candidate"]
        assert backtest["periods_per_year"] == 252.0
        assert "next open" in run.record.gate("backtest").summary
        labelled = int(run.record.gate("validation").summary.split()[0])
        assert 250 < labelled <= 300  # the judged sessions whose 5-session horizon is known
