"""Autopilot fixtures: a home holding the real BTCUSDT hourly candles, and a small policy.

The dates are real moments of the sample: at 2025-01-08 the first LightGBM trained on the
3,000 hours before its 500-hour gate window passes every gate (it becomes the first champion);
at 2025-04-23 a retrain beats that champion on the 500 hours before; at 2025-01-15 one does not.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from alphaops.autopilot import Autopilot, AutopilotPolicy
from alphaops.core.config import AlphaOpsConfig, load_config
from alphaops.gates import GatePolicy
from alphaops.services._common import open_configured_registry
from alphaops.services.data import import_files

MECHANICS_POLICY = GatePolicy.from_dict(
    {"backtest": {"min_net_return": None, "min_psr": None, "min_dsr": None}}
)
FIRST = datetime(2025, 1, 8, tzinfo=UTC)
BEATS_CHAMPION = datetime(2025, 4, 23, tzinfo=UTC)
LOSES_TO_CHAMPION = datetime(2025, 1, 15, tzinfo=UTC)


def model_policy(**overrides: Any) -> dict[str, Any]:
    """Return one model's policy as plain data (what a YAML file holds)."""
    base: dict[str, Any] = {
        "job": {
            "symbols": ["BTCUSDT"],
            "timeframe": "1h",
            "model": "lightgbm",
            "label": {"kind": "ternary", "horizon": 4, "threshold": 0.005},
            "params": {"n_estimators": 60, "early_stopping_rounds": 0},
        },
        "schedule": {"every": "7d"},
        "train_bars": 3000,
        "gate_bars": 500,
        "cooldown": "1d",
        "rollout": {"steps": "shadow,10,100", "interval": "1h"},
    }
    return base | overrides


def make_policy(*models: dict[str, Any], **overrides: Any) -> AutopilotPolicy:
    """Return a validated policy of ``models`` (default: one model)."""
    return AutopilotPolicy.model_validate({"models": list(models or [model_policy()])} | overrides)


@pytest.fixture
def config(tmp_path: Path, data_dir: Path) -> AlphaOpsConfig:
    """A fresh home holding BTCUSDT 1h candles."""
    cfg = load_config(environ={"ALPHAOPS_HOME": str(tmp_path / "home")})
    (outcome,) = import_files(
        cfg, [data_dir / "BTCUSDT-1h.parquet"], symbol="BTCUSDT", timeframe="1h"
    )
    outcome.raise_for_error()
    # These tests follow the autopilot's mechanics on real dates, not the gates' bar: the
    # registry's policy reports the absolute profitability floors instead of enforcing them
    # (set with a reason, as an operator would), so the moments above keep their verdicts.
    with open_configured_registry(cfg) as registry:
        registry.set_gate_policy(MECHANICS_POLICY.to_dict(), reason="autopilot mechanics tests")
    return cfg


@pytest.fixture
def pilot(config: AlphaOpsConfig) -> Iterator[Autopilot]:
    """An autopilot over the default one-model policy, training in-process."""
    with Autopilot(config, make_policy(), executor="sequential") as opened:
        yield opened
