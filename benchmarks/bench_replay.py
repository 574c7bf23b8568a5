"""How fast the lifecycle replay runs the whole control plane over history.

A year (2024-07-01 .. 2025-07-01) of real 1h candles of BTCUSDT, ETHUSDT and SOLUSDT from
``../shared/data`` (26,000+ bars), replayed by ``alphaops.autopilot.replay_lifecycle`` in a
fresh home with one default-sized LightGBM per symbol (60 rounds, 3,000 training bars, 500
gate bars), judged under the demo gate policy as ``replay --sample`` is: the live predictor
serves every bar, the simulated trader journals its fills, the autopilot checks once a
simulated day, rollouts are judged as they go.

* ``with_retrains``: monthly scheduled retrains plus emergency triggers (the goal: the whole
  year in under 5 minutes on this 2-core machine).
* ``without_retrains``: only each model's first version is trained (the schedule never comes
  due, no triggers): the cost of serving, journaling and filling alone.

Figures: seconds, simulated bars per second, retrains and what became of them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
START = datetime(2024, 7, 1, tzinfo=UTC)
END = datetime(2025, 7, 1, tzinfo=UTC)
DATA = Path(
    os.environ.get("ALPHAOPS_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


def _policy(retrains: bool) -> Any:
    from alphaops.autopilot import AutopilotPolicy

    models = []
    for symbol in SYMBOLS:
        models.append(
            {
                "job": {
                    "symbols": [symbol],
                    "timeframe": "1h",
                    "model": "lightgbm",
                    "label": {"kind": "ternary", "horizon": 4, "threshold": 0.005},
                    "params": {"n_estimators": 60, "early_stopping_rounds": 0},
                },
                "schedule": {"every": "30d" if retrains else "3650d"},
                "train_bars": 3000,
                "gate_bars": 500,
                "cooldown": "2d",
                "triggers": (
                    {"win_rate_below": 0.35, "min_trades": 20}
                    if retrains
                    else {"drift_alarm": False}
                ),
            }
        )
    return AutopilotPolicy.model_validate(
        {"check_every": "1d", "budget": {"retrains_per_day": 12}, "models": models}
    )


def _replay(retrains: bool) -> dict[str, Any]:
    from alphaops.autopilot.replay import replay_lifecycle
    from alphaops.core.config import load_config
    from alphaops.services.data import import_files
    from alphaops.services.gates import apply_demo_policy

    root = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    try:
        config = load_config(environ={"ALPHAOPS_HOME": str(root / "home")})
        for symbol in SYMBOLS:
            (outcome,) = import_files(
                config, [DATA / f"{symbol}-1h.parquet"], symbol=symbol, timeframe="1h"
            )
            outcome.raise_for_error()
        # As 'replay --sample' does: judged under the demo policy (profitability floors
        # reported), so that champions are served and rollouts judged as the control plane
        # would with models that clear alphaops' defaults.
        apply_demo_policy(config, reason="benchmark: the control plane's speed, not the models")
        result = replay_lifecycle(config, _policy(retrains), start=START, end=END)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    bars = sum(len(m.equity) for m in result.models)
    return {
        "seconds": round(result.seconds, 1),
        "bars": bars,
        "bars_per_second": round(bars / result.seconds, 1),
        "retrains": result.retrains,
        "runs": result.counts,
        "promotions": result.promotions,
        "rollbacks": result.rollbacks,
    }


def run() -> dict[str, Any]:
    """Return the figures of both replays."""
    with_retrains = _replay(True)
    without = _replay(False)
    return {
        "with_retrains": with_retrains,
        "without_retrains": without,
        "goal_year_with_monthly_retrains_s": 300,
        "goal_met": with_retrains["seconds"] < 300,
    }
