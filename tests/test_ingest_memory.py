"""Importing a large candle file costs about the memory of its candles (issue 12), and the
block-by-block validation that makes this possible finds exactly what a single pass finds.

The peak figures are sanity bounds on a ~50 MB file (the benchmark ``bench_ingest`` measures
~200 MB files against the goal of 2x); nothing here is timed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from alphaops.data import Candles, _scan, validate_frame

_NOW_MS = int(pd.Timestamp("2026-01-01", tz="UTC").value // 1_000_000)

_IMPORT = """
import json, sys, tempfile
from pathlib import Path
from alphaops.core.config import AlphaOpsConfig
from alphaops.services.data import import_files


def status_kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])


# Lazy imports and first-use caches cost memory once, whatever the file: pay them on a tiny
# file first, then measure the large one.
import_files(AlphaOpsConfig(home=Path(sys.argv[2]) / "warm"), [Path(sys.argv[3])])
config = AlphaOpsConfig(home=Path(sys.argv[2]))
with open("/proc/self/clear_refs", "w") as handle:  # peak := now, after the imports
    handle.write("5")
before = status_kib("VmRSS")
outcome = import_files(config, [Path(sys.argv[1])])[0]
peak = status_kib("VmHWM") - before
if outcome.error is not None:
    raise SystemExit(f"import failed: {outcome.error}")
print(json.dumps({
    "rows": outcome.result.rows,
    "useful_bytes": int(outcome.candles.frame.memory_usage(index=False).sum()),
    "peak_growth_bytes": peak * 1024,
}))
"""


def _tiled(data_dir: Path, rows: int) -> pd.DataFrame:
    """Real BTCUSDT 1h prices repeated onto a 1-minute grid from 2018 (Binance kline layout)."""
    real = pd.read_parquet(data_dir / "BTCUSDT-1h.parquet")
    prices = real[["open", "high", "low", "close", "volume"]].to_numpy()
    tiled = np.resize(prices, (rows, 5))
    start = int(pd.Timestamp("2018-01-01", tz="UTC").value // 1_000_000)
    frame = pd.DataFrame(tiled, columns=["open", "high", "low", "close", "volume"])
    frame.insert(0, "open_time", start + np.arange(rows, dtype=np.int64) * 60_000)
    return frame


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_importing_a_50mb_file_peaks_near_its_candles(
    fmt: str, data_dir: Path, tmp_path: Path
) -> None:
    frame = _tiled(data_dir, 900_000)
    path = tmp_path / f"BTCUSDT-1m.{fmt}"
    warm = tmp_path / f"BTCUSDT-1h.{fmt}"
    for file, rows in ((path, frame), (warm, frame[::60].head(100))):
        if fmt == "csv":
            rows.to_csv(file, index=False)
        else:
            file.write_text(json.dumps(rows.to_numpy().tolist()))
    assert path.stat().st_size > 45 * 2**20
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT, str(path), str(tmp_path / "home"), str(warm)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["rows"] == len(frame)
    assert result["useful_bytes"] == len(frame) * 48
    ratio = result["peak_growth_bytes"] / result["useful_bytes"]
    assert ratio < 2.5, f"{fmt}: import peaked at {ratio:.2f}x the candle bytes"
    stored = pd.read_parquet(tmp_path / "home" / "data" / "BTCUSDT" / "1m.parquet")
    assert len(stored) == len(frame)
    assert stored["close"].to_numpy().tolist() == frame["close"].tolist()


def _damaged(data_dir: Path) -> pd.DataFrame:
    frame = pd.read_parquet(data_dir / "BTCUSDT-1h.parquet").reset_index(drop=True)
    frame["timestamp"] = frame["timestamp"].astype("datetime64[ms, UTC]")
    stamps = frame["timestamp"].copy()
    stamps.iloc[[100, 101]] = stamps.iloc[[101, 100]].to_numpy()  # unsorted
    stamps.iloc[2_000] = stamps.iloc[1_999]  # a repeat
    stamps.iloc[3_000] += pd.Timedelta(minutes=7)  # off the 1h grid
    stamps.iloc[-1] = pd.Timestamp("2300-01-01", tz="UTC")  # in the future
    frame["timestamp"] = stamps
    frame.loc[[5, 4_005], "close"] = np.nan
    frame.loc[6, "open"] = 0.0
    frame.loc[[7, 5_007], "volume"] = -1.0
    frame.loc[[8, 6_008], "high"] = frame.loc[[8, 6_008], "low"] / 2
    return frame


def _reports(frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> list[Any]:
    found = []
    for block in (_scan.BLOCK_ROWS, 1_000, 7):
        if block < 100 and len(frame) > 1_000:
            continue
        monkeypatch.setattr(_scan, "BLOCK_ROWS", block)
        report = validate_frame(frame, now_ms=_NOW_MS, **kwargs)
        found.append((report.to_dict(), report.gaps.gaps))
    return found


def test_block_validation_finds_what_one_pass_finds(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = _damaged(data_dir)
    whole, *blocks = _reports(frame, monkeypatch, symbol="BTCUSDT", timeframe="1h")
    assert all(b == whole for b in blocks)
    checks = {p["check"]: p for p in whole[0]["problems"]}
    assert set(checks) >= {
        "unsorted",
        "duplicate_timestamp",
        "timeframe_mismatch",
        "timestamp_future",
        "not_finite",
        "non_positive_price",
        "negative_volume",
        "high_low_inconsistent",
    }
    assert checks["not_finite"]["rows"] == [5, 4_005]
    assert checks["negative_volume"]["rows"] == [7, 5_007]
    assert checks["timestamp_future"]["rows"] == [len(frame) - 1]


def test_block_validation_counts_gaps_and_sessions_alike(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    btc = pd.read_parquet(data_dir / "BTCUSDT-1h.parquet")
    holed = btc.drop(index=btc.index[[10, 11, 999, 1_000, 1_001, 5_000]]).reset_index(drop=True)
    whole, *blocks = _reports(holed, monkeypatch, symbol="BTCUSDT", timeframe="1h")
    assert all(b == whole for b in blocks)
    assert whole[0]["ok"]
    assert whole[0]["gaps"]["missing_bars"] >= 6
    spx = pd.read_parquet(data_dir / "SPX-1d.parquet")
    dropped = spx.drop(index=spx.index[[50, 51, 2_000]]).reset_index(drop=True)
    whole, *blocks = _reports(dropped, monkeypatch, symbol="SPX", timeframe="1d", calendar="XNYS")
    assert all(b == whole for b in blocks)
    assert whole[0]["ok"]
    assert whole[0]["gaps"]["count"] >= 2
    day = pd.Timestamp("2016-06-04", tz="UTC").as_unit("ms")  # a Saturday
    saturday = spx.iloc[[0]].assign(timestamp=day)
    weekend = pd.concat(
        [spx[spx["timestamp"] < day], saturday, spx[spx["timestamp"] > day]], ignore_index=True
    )
    assert 0 < weekend.index[weekend["timestamp"] == day][0] < len(spx) - 1
    whole, *blocks = _reports(weekend, monkeypatch, symbol="SPX", timeframe="1d", calendar="XNYS")
    assert all(b == whole for b in blocks)
    assert [p["check"] for p in whole[0]["problems"]] == ["off_calendar"]


@pytest.mark.parametrize(
    ("steps", "coarser"),
    [
        ([1, 1, 3, 3] * 2, True),  # median (1 + 3) / 2 bars = 2 > 1
        ([1, 1, 1, 3] * 2, False),
        ([1, 1, 3, 3, 3] * 2, True),
        ([1, 1, 1, 3, 3] * 2, False),
        ([1, 2, 1, 2] * 2, True),  # median 1.5 bars
        ([1, 3], False),  # two steps (a weekend in a short window) are too few to judge
        ([3, 3, 3, 3, 3, 3, 3], False),  # seven steps: still too few
    ],
)
def test_coarser_than_declared_is_decided_by_the_median_step(
    steps: list[int], coarser: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    bars = np.concatenate([[0], np.cumsum(steps)])
    stamps = pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(bars * 5, unit="min")
    frame = pd.DataFrame({"timestamp": stamps.astype("datetime64[ms, UTC]")})
    for column in ("open", "high", "low", "close", "volume"):
        frame[column] = 1.0
    whole, *blocks = _reports(frame, monkeypatch, symbol="BTCUSDT", timeframe="5m")
    assert all(b == whole for b in blocks)
    problems = [p["message"] for p in whole[0]["problems"]]
    assert any("more than 5m apart" in m for m in problems) is coarser


def test_canonical_columns_are_shared_not_copied_yet_independent(data_dir: Path) -> None:
    frame = pd.read_parquet(data_dir / "BTCUSDT-1h.parquet")
    frame["timestamp"] = frame["timestamp"].astype("datetime64[ms, UTC]")
    candles = Candles.from_frame(frame, symbol="BTCUSDT", timeframe="1h")
    assert np.shares_memory(
        candles.frame["timestamp"].to_numpy(dtype="datetime64[ms]"),
        frame["timestamp"].to_numpy(dtype="datetime64[ms]"),
    )
    for column in ("open", "close", "volume"):
        assert np.shares_memory(candles.frame[column].to_numpy(), frame[column].to_numpy())
    close = float(frame["close"].iloc[0])
    frame.loc[0, "close"] = -1.0  # copy-on-write: the candles keep their own values
    assert float(candles.frame["close"].iloc[0]) == close
    candles.frame.loc[1, "open"] = -2.0
    assert float(frame["open"].iloc[1]) > 0
