"""alphaops: the whole life of the machine-learning models behind trading bots.

The names most programs need are importable from the top level:

>>> import alphaops
>>> spec = alphaops.FeatureSpec.default()
>>> len(spec.names) > 0 and spec.warmup_bars > 0
True

They are imported on first use (PEP 562), so ``import alphaops`` itself is instant: the
``alphaops`` command and a bot importing only ``alphaops.runtime`` do not pay for pandas and
the feature code before they need them.
"""

import importlib as _importlib
import typing as _typing

from alphaops._version import __version__

if _typing.TYPE_CHECKING:
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
    from alphaops.datasets import (
        DatasetSpec,
        SequenceWindows,
        build_sequence_dataset,
        load_dataset,
    )
    from alphaops.features import FeaturePipeline, FeatureSpec, LabelRule, make_labels

_HOMES = {
    "alphaops.core": (
        "AlphaOpsConfig",
        "AlphaOpsError",
        "AlphaOpsHome",
        "Timeframe",
        "load_config",
    ),
    "alphaops.data": (
        "Candles",
        "CandleStore",
        "download_candles",
        "purged_kfold",
        "read_candles",
        "resample",
        "walk_forward",
    ),
    "alphaops.datasets": (
        "DatasetSpec",
        "SequenceWindows",
        "build_sequence_dataset",
        "load_dataset",
    ),
    "alphaops.features": ("FeaturePipeline", "FeatureSpec", "LabelRule", "make_labels"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

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


def __getattr__(name: str) -> _typing.Any:
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'alphaops' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
