"""Files that lie about themselves are refused, named and fixed; what is good is still kept.

Real candles from ``../shared/data``; the CLI a person runs and the library a bot calls.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from alphaops.cli import main
from alphaops.core.errors import DataValidationError, IntegrityError, UsageError
from alphaops.data.candles import Candles
from alphaops.registry import open_registry
from alphaops.registry.testing import build_tiny_bundle

Loader = Callable[[str, str], Candles]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_hourly_candles_declared_as_five_minutes_are_refused_naming_their_real_timeframe(
    tmp_path: Path, load_real: Loader, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "btc.parquet"
    load_real("BTCUSDT", "1h").frame.tail(500).to_parquet(path)
    home = str(tmp_path / "home")
    code, _, err = run(capsys, "--home", home, "data", "import", str(path), "--symbol",
                       "BTCUSDT", "--timeframe", "5m")  # fmt: skip
    assert code == 1
    assert "more than 5m apart (typically 1h)" in err
    assert "--timeframe 1h" in err
    code, out, _ = run(capsys, "--home", home, "data", "list", "--json")
    assert code == 0
    assert json.loads(out) == []


def test_candles_from_the_future_are_refused(load_real: Loader) -> None:
    frame = load_real("BTCUSDT", "1h").frame.tail(10).copy()
    frame.loc[frame.index[-1], "timestamp"] = pd.Timestamp("3000-01-01", tz="UTC")
    with pytest.raises(DataValidationError, match=r"1 candle\(s\) open after now"):
        Candles.from_frame(frame, symbol="BTCUSDT", timeframe="1h")
    # The same candles are fine for a clock that is in the year 3000.
    Candles.from_frame(frame.iloc[:-1], symbol="BTCUSDT", timeframe="1h")


@pytest.mark.parametrize(
    ("symbol", "timeframe"),
    [("SPX", "1d"), ("EURUSD", "1h"), ("BTCUSDT", "5m"), ("SOLUSDT", "1h")],
)
def test_real_calendars_and_gaps_are_not_mistaken_for_a_wrong_timeframe(
    load_real: Loader, symbol: str, timeframe: str
) -> None:
    assert len(load_real(symbol, timeframe)) > 1000  # weekends, holidays, exchange outages


def test_importing_a_good_and_a_bad_file_keeps_the_good_one_and_reports_both(
    tmp_path: Path, load_real: Loader, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "ETHUSDT-1h.parquet"
    load_real("ETHUSDT", "1h").frame.tail(300).to_parquet(good)
    bad = tmp_path / "SOLUSDT-1h.csv"
    bad.write_text("timestamp,open,high,low,close,volume\n2025-01-01T00:00:00Z,1,0.5,2,1,3\n")
    home = str(tmp_path / "home")
    code, out, err = run(capsys, "--home", home, "data", "import", str(good), str(bad))
    assert code == 1
    assert f"{good}: ETHUSDT 1h, read 300, added 300" in out  # piped: plain, whole lines
    assert "not imported:" in err
    assert str(bad) in err
    code, out, _ = run(capsys, "--home", home, "data", "import", str(good), str(bad), "--json")
    assert code == 1
    both = json.loads(out)  # one JSON document with both outcomes
    assert [Path(str(o["path"])).name for o in both] == [good.name, bad.name]
    assert both[0]["already_present"] == 300
    assert both[1]["error"]["error"] == "data_invalid"


def test_a_bundle_with_a_lower_case_symbol_is_refused_at_write_and_at_publish(
    tmp_path: Path,
) -> None:
    with pytest.raises(UsageError, match="'btcusdt' is not in canonical form: write 'BTCUSDT'"):
        build_tiny_bundle(tmp_path / "b1", symbol="btcusdt")
    folder = build_tiny_bundle(tmp_path / "b2")
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps(manifest | {"symbol": "btcusdt"}))
    with open_registry(tmp_path / "home") as registry:
        with pytest.raises(IntegrityError, match="write 'BTCUSDT'"):
            registry.publish(folder)
        assert registry.list_models() == []


@pytest.mark.parametrize("when", ["nan", "NaT", ""])
def test_a_time_option_that_is_not_a_time_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], when: str
) -> None:
    home = tmp_path / "home"
    open_registry(home).close()
    code, _, err = run(capsys, "--home", str(home), "journal", "stats", "BTCUSDT/lightgbm",
                       "--since", when)  # fmt: skip
    assert code == 1
    assert f"--since {when!r} is not a date or time" in err


def test_a_csv_fill_time_out_of_range_is_refused_naming_its_line(tmp_path: Path) -> None:
    from alphaops.journal import Journal
    from alphaops.journal.importers import import_fills_csv

    csv = tmp_path / "fills.csv"
    csv.write_text("time,side,qty,price,symbol\n99999999999999999999,buy,1,100,BTCUSDT\n")
    with open_registry(tmp_path / "home") as registry, Journal(registry) as journal:
        with pytest.raises(
            DataValidationError, match=r"line 2, column time: .* out of range as epoch milliseconds"
        ):
            import_fills_csv(journal, csv)
        assert journal.fills() == []
