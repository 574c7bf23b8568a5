"""What reading a huge candle file costs in memory, and how early a hostile one is refused.

Each case runs ``read_candles`` in a fresh process and reports the growth of its peak resident
memory during the read (imports done, the kernel's peak reset through ``/proc/self/clear_refs``,
then ``VmHWM`` minus the resident size before) against the file size:

- ``valid_csv``: ~``TARGET_MB`` MB of real BTCUSDT 1h prices (``$ALPHAOPS_TEST_DATA`` or
  ``../shared/data``) tiled onto a 1-minute grid from 2018-01-01 (epoch-ms ``open_time``, the
  Binance layout), and ``valid_json``: the same candles as freqtrade JSON rows. Their useful
  data is the validated candles (6 columns of 8 bytes per row): goal ``*_peak_over_useful``
  under 2. ``*_read_only_*`` is the reading alone (the reader's private ``_read_raw``), the
  rest is ``Candles.from_frame``'s validation (block by block, no copy of canonical columns);
- ``import_csv`` / ``import_json``: the same two files end to end, as ``alphaops data import``
  runs them (``services.data.import_files`` into a fresh home: read, validate, write the
  store's Parquet file): goal ``import_*_peak_over_useful`` under 2;
- ``garbage_csv``: the same size of random base64 lines; ``header_garbage_csv``: a proper
  candle header over the same garbage; ``garbage_json``: a JSON array of random strings; and
  ``registry_import_bomb``: a 256 KiB ``registry import`` archive declaring 256 MiB of zeros.
  Each must be refused with a typed error after reading little of it: goal peak growth under
  64 MB (``*_peak_mb``) whatever the file size, in well under a second (``*_s``).
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

TARGET_MB = 200
_MB = 1024 * 1024

_PEAK = """
def _status_kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def _start_peak():
    # Reset the peak (VmHWM) to the current RSS: import-time peaks must not hide the read's.
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    return _status_kib("VmRSS")
"""

_READ = (
    _PEAK
    + """
import json, sys, time
from alphaops.core.errors import AlphaOpsError
from alphaops.data import read_candles
path, timeframe = sys.argv[1], sys.argv[2]
before = _start_peak()
began = time.perf_counter()
try:
    candles = read_candles(path, symbol="BTCUSDT", timeframe=timeframe)
    outcome = {"rows": len(candles), "useful_bytes": int(candles.frame.memory_usage(index=False).sum())}
except AlphaOpsError as exc:
    outcome = {"error": exc.code, "message": exc.message[:200]}
seconds = time.perf_counter() - began
after = _status_kib("VmHWM")
outcome |= {"seconds": seconds, "peak_growth_kib": after - before}
if "rows" in outcome:  # the reading alone, without Candles.from_frame's validation
    from pathlib import Path
    from alphaops.data import readers
    del candles
    before = _start_peak()
    frame = readers._read_raw(Path(path), readers.infer_format(path), assume_utc=False)
    outcome["read_only_peak_growth_kib"] = _status_kib("VmHWM") - before
print(json.dumps(outcome))
"""
)

_IMPORT = (
    _PEAK
    + """
import json, sys, time
from pathlib import Path
from alphaops.core.errors import AlphaOpsError
from alphaops.registry import open_registry
with open_registry(Path(sys.argv[1])) as registry:
    registry.list_versions()
    before = _start_peak()
    began = time.perf_counter()
    try:
        registry.import_archive(Path(sys.argv[2]))
        outcome = {"error": None}
    except AlphaOpsError as exc:
        outcome = {"error": exc.code, "message": exc.message[:200]}
    seconds = time.perf_counter() - began
    after = _status_kib("VmHWM")
print(json.dumps(outcome | {"seconds": seconds, "peak_growth_kib": after - before}))
"""
)


_IMPORT_DATA = (
    _PEAK
    + """
import json, sys, time
from pathlib import Path
from alphaops.core.config import AlphaOpsConfig
from alphaops.services.data import import_files
config = AlphaOpsConfig(home=Path(sys.argv[2]))
before = _start_peak()
began = time.perf_counter()
outcome = import_files(config, [Path(sys.argv[1])])[0]
seconds = time.perf_counter() - began
after = _status_kib("VmHWM")
if outcome.error is not None:
    raise SystemExit(f"import failed: {outcome.error}")
print(json.dumps({
    "rows": len(outcome.candles),
    "useful_bytes": int(outcome.candles.frame.memory_usage(index=False).sum()),
    "stored_rows": outcome.result.rows,
    "seconds": seconds,
    "peak_growth_kib": after - before,
}))
"""
)


def _data_dir() -> Path:
    here = Path(__file__).resolve().parents[1]
    return Path(os.environ.get("ALPHAOPS_TEST_DATA", here.parent / "shared" / "data"))


def _valid_csv(path: Path) -> None:
    import numpy as np
    import pandas as pd

    real = pd.read_parquet(_data_dir() / "BTCUSDT-1h.parquet")
    prices = real[["open", "high", "low", "close", "volume"]].to_numpy()
    start = int(pd.Timestamp("2018-01-01", tz="UTC").value // 1_000_000)
    written, block = 0, 0
    with path.open("w") as out:
        out.write("open_time,open,high,low,close,volume\n")
        while written < TARGET_MB * _MB:
            times = start + (block * len(prices) + np.arange(len(prices))) * 60_000
            frame = pd.DataFrame(prices, columns=["open", "high", "low", "close", "volume"])
            frame.insert(0, "open_time", times)
            text = frame.to_csv(index=False, header=False)
            out.write(text)
            written += len(text)
            block += 1


def _valid_json(csv: Path, path: Path) -> None:
    import pandas as pd

    with path.open("w") as out:
        out.write("[")
        first = True
        for chunk in pd.read_csv(csv, chunksize=500_000):
            rows = json.dumps(chunk.to_numpy().tolist())[1:-1]
            out.write(("" if first else ",") + rows)
            first = False
        out.write("]")


def _garbage_lines(size: int, seed: int) -> bytes:
    rng = __import__("random").Random(seed)
    chunk = base64.b64encode(rng.randbytes(3 * _MB)).decode()
    lines = "\n".join(chunk[i : i + 76] for i in range(0, len(chunk), 76)).encode() + b"\n"
    return (lines * (size // len(lines) + 1))[:size]


def _garbage_json(path: Path) -> None:
    rng = __import__("random").Random(3)
    words = [base64.b64encode(rng.randbytes(48)).decode() for _ in range(10_000)]
    piece = ("[" + ",".join(json.dumps(w) for w in words)).encode()
    with path.open("wb") as out:
        out.write(piece)
        written = len(piece)
        body = ("," + ",".join(json.dumps(w) for w in words)).encode()
        while written < TARGET_MB * _MB:
            out.write(body)
            written += len(body)
        out.write(b"]")


class _Zeros:
    def __init__(self, size: int) -> None:
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return bytes(n)


def _bomb(tmp: Path) -> tuple[Path, Path]:
    from alphaops.registry import open_registry
    from alphaops.registry.testing import build_tiny_bundle

    home = tmp / "home"
    with open_registry(home) as registry:
        registry.publish(build_tiny_bundle(tmp / "bundle", seed=1))
        good = registry.export("BTCUSDT/logreg/1", tmp / "good.tar.gz")
    bomb = tmp / "bomb.tar.gz"
    with tarfile.open(good) as source, tarfile.open(bomb, "w:gz") as out:
        for member in source.getmembers():
            data = source.extractfile(member).read()  # type: ignore[union-attr]
            info = tarfile.TarInfo(member.name)
            if member.name == "bundle/model.onnx":
                info.size = 256 * _MB
                out.addfile(info, _Zeros(info.size))  # type: ignore[arg-type]
            else:
                info.size = len(data)
                out.addfile(info, io.BytesIO(data))
    return home, bomb


def _run(script: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run() -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as name:
        tmp = Path(name)
        valid = tmp / "BTCUSDT-1m.csv"
        _valid_csv(valid)
        garbage = tmp / "garbage-1m.csv"
        garbage.write_bytes(_garbage_lines(valid.stat().st_size, seed=1))
        headed = tmp / "headed-1m.csv"
        headed.write_bytes(b"timestamp,open,high,low,close,volume\n" + garbage.read_bytes())
        garbage_json = tmp / "garbage-1m.json"
        _garbage_json(garbage_json)
        valid_json = tmp / "BTC_USDT-1m.json"
        _valid_json(valid, valid_json)
        cases = {
            "valid_csv": valid,
            "valid_json": valid_json,
            "garbage_csv": garbage,
            "header_garbage_csv": headed,
            "garbage_json": garbage_json,
        }
        for case, path in cases.items():
            result = _run(_READ, str(path), "1m")
            peak_mb = result["peak_growth_kib"] / 1024
            figures[f"{case}_file_mb"] = round(path.stat().st_size / _MB, 1)
            figures[f"{case}_peak_mb"] = round(peak_mb, 1)
            figures[f"{case}_s"] = round(result["seconds"], 3)
            figures[f"{case}_outcome"] = result.get("error") or f"{result['rows']} rows"
            if "useful_bytes" in result:
                useful = result["useful_bytes"] / _MB
                figures[f"{case}_useful_mb"] = round(useful, 1)
                figures[f"{case}_peak_over_useful"] = round(peak_mb / useful, 2)
                figures[f"{case}_peak_over_file"] = round(peak_mb * _MB / path.stat().st_size, 2)
                read_mb = result["read_only_peak_growth_kib"] / 1024
                figures[f"{case}_read_only_peak_mb"] = round(read_mb, 1)
                figures[f"{case}_read_only_peak_over_useful"] = round(read_mb / useful, 2)
        for case, path in {"import_csv": valid, "import_json": valid_json}.items():
            result = _run(_IMPORT_DATA, str(path), str(tmp / f"home-{case}"))
            peak_mb = result["peak_growth_kib"] / 1024
            useful = result["useful_bytes"] / _MB
            figures[f"{case}_peak_mb"] = round(peak_mb, 1)
            figures[f"{case}_s"] = round(result["seconds"], 3)
            figures[f"{case}_outcome"] = f"{result['stored_rows']} rows stored"
            figures[f"{case}_peak_over_useful"] = round(peak_mb / useful, 2)
        home, bomb = _bomb(tmp)
        result = _run(_IMPORT, str(home), str(bomb))
        figures["registry_import_bomb_archive_kb"] = round(bomb.stat().st_size / 1024, 1)
        figures["registry_import_bomb_peak_mb"] = round(result["peak_growth_kib"] / 1024, 1)
        figures["registry_import_bomb_s"] = round(result["seconds"], 3)
        figures["registry_import_bomb_outcome"] = result.get("error")
    figures["goal_valid_csv_peak_over_useful"] = 2
    figures["goal_import_peak_over_useful"] = 2
    figures["goal_refusal_peak_mb"] = 64
    return figures


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
