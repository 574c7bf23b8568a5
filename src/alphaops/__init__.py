"""alphaops: the whole life of the machine-learning models behind trading bots.

The names most programs need are importable from the top level:

>>> import alphaops
>>> spec = alphaops.FeatureSpec.default()
>>> len(spec.names) > 0 and spec.warmup_bars > 0
True
"""

from alphaops._version import __version__
from alphaops.core import AlphaOpsConfig, AlphaOpsError, AlphaOpsHome, Timeframe, load_config
from alphaops.data import (
    Candles,
    CandleStore,
    download_candles,
    purged_kfold,
    read_candles,
    resample,
    walk_forward,
)
from alphaops.datasets import DatasetSpec, SequenceWindows, build_sequence_dataset, load_dataset
from alphaops.features import FeaturePipeline, FeatureSpec, LabelRule, make_labels

__all__ = [
    "AlphaOpsConfig",
    "AlphaOpsError",
    "AlphaOpsHome",
    "CandleStore",
    "Candles",
    "DatasetSpec",
    "FeaturePipeline",
    "FeatureSpec",
    "LabelRule",
    "SequenceWindows",
    "Timeframe",
    "__version__",
    "build_sequence_dataset",
    "download_candles",
    "load_config",
    "load_dataset",
    "make_labels",
    "purged_kfold",
    "read_candles",
    "resample",
    "walk_forward",
]
