"""The bundled sample data: real, valid, documented, and identical to the shared data."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

import pandas as pd

from alphaops.data import Candles, read_candles, sample_files

Loader = Callable[[str, str], Candles]


def test_every_bundled_file_is_listed_with_its_sha256_in_the_sample_readme() -> None:
    files = sample_files()
    readme = (files[0].path.parent / "README.md").read_text()
    assert "licence" in readme.lower()
    for sample in files:
        digest = hashlib.sha256(sample.path.read_bytes()).hexdigest()
        assert re.search(rf"`{sample.path.name}`.*`{digest}`", readme), sample.path.name


def test_bundled_candles_are_valid_gap_free_and_equal_the_shared_real_data(
    load_real: Loader,
) -> None:
    for sample in sample_files():
        candles = read_candles(sample.path, symbol=sample.symbol, timeframe=sample.timeframe)
        assert candles.gaps.count == 0
        full = load_real(sample.symbol, str(sample.timeframe))
        first, last = candles.frame["timestamp"].iloc[[0, -1]]
        same = full.between(first, last + pd.Timedelta(sample.timeframe.delta))
        pd.testing.assert_frame_equal(candles.frame, same.frame)
