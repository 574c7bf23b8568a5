"""Names the CLI's options list in their help, without importing the code behind them.

``alphaops.training`` (pandas, the model families) is too heavy to import for ``alphaops -h``;
``tests/test_cli_startup.py`` checks that these tuples equal the library's own.
"""

from __future__ import annotations

__all__ = ["EXECUTORS", "MODEL_FAMILIES"]

MODEL_FAMILIES: tuple[str, ...] = ("random_forest", "lightgbm", "xgboost", "lstm", "patchtst")
"""Equal to :data:`alphaops.training.MODEL_FAMILIES`."""

EXECUTORS: tuple[str, ...] = ("sequential", "process", "ray")
"""Equal to :data:`alphaops.training.fanout.EXECUTORS`."""
