"""Market data: canonical candles and their validation, readers, the local store, ccxt download
and resampling.

>>> from alphaops.data import Candles, CandleStore, read_candles, resample
"""

from alphaops.data.calendars import CONTINUOUS, Calendar, Fill, FillRule
from alphaops.data.candles import (
    OHLCV,
    PRICE_COLUMNS,
    Candles,
    Gap,
    GapReport,
    Problem,
    ValidationReport,
    validate_frame,
)
from alphaops.data.download import (
    CandleSink,
    DownloadProgress,
    DownloadResult,
    OHLCVExchange,
    download_candles,
    make_exchange,
)
from alphaops.data.readers import (
    TIMESTAMP_ALIASES,
    CandleFormat,
    infer_format,
    infer_symbol_timeframe,
    read_candles,
)
from alphaops.data.resampling import Partial, ResampleReport, resample, resample_with_report
from alphaops.data.sample import SampleFile, sample_files
from alphaops.data.splits import Embargo, Split, purged_kfold, walk_forward
from alphaops.data.store import (
    AppendResult,
    CandleStore,
    FrameWriter,
    OnConflict,
    StoreEntry,
    TimeLike,
    write_parquet,
)

__all__ = [
    "CONTINUOUS",
    "OHLCV",
    "PRICE_COLUMNS",
    "TIMESTAMP_ALIASES",
    "AppendResult",
    "Calendar",
    "CandleFormat",
    "CandleSink",
    "CandleStore",
    "Candles",
    "DownloadProgress",
    "DownloadResult",
    "Embargo",
    "Fill",
    "FillRule",
    "FrameWriter",
    "Gap",
    "GapReport",
    "OHLCVExchange",
    "OnConflict",
    "Partial",
    "Problem",
    "ResampleReport",
    "SampleFile",
    "Split",
    "StoreEntry",
    "TimeLike",
    "ValidationReport",
    "download_candles",
    "infer_format",
    "infer_symbol_timeframe",
    "make_exchange",
    "purged_kfold",
    "read_candles",
    "resample",
    "resample_with_report",
    "sample_files",
    "validate_frame",
    "walk_forward",
    "write_parquet",
]
