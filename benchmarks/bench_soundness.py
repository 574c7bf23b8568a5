"""Trading soundness of the product's defaults on markets and months the models have not seen.

Per market of ``../shared/data``, a default LightGBM is trained through the library path a
user calls (``TrainingJob`` with ``FeatureSpec.default()``, the default balanced label
``LabelRule.balanced("ternary", horizon=4)``, the default decision rule, seed 0), published to
a temporary registry and judged by the real gate runner (``run_gates``, default ``GatePolicy``, a
``BundlePredictor``, window from the first judged bar, 1 trial) on the bars after its
training data. Two parameter variants: ``default`` (the family's defaults: 300 rounds at most,
early stopping after 30 on the validation split) and ``r60`` (a fixed 60 rounds, no early
stopping, as in the repository's gate tests).

* BTCUSDT, ETHUSDT, SOLUSDT 1h: trained on the 6,000 bars before 2025-06-01, judged on
  2025-06-01 .. the end of the data (2025-06-30 23:00: 720 bars, fewer than the 3,000 asked);
* EURUSD 1h (calendar ``fx``): judged on the last 3,000 bars, trained on the bars before them
  (the file holds 6,225 bars, so 3,225 train, not 6,000);
* SPX 1d (calendar ``XNYS``): judged on the last 500 sessions, trained on the sessions before.

Figures per variant and market (``<variant>_<market>_*``): label class shares on the training
rows under the default balanced rule and the old fixed 1% rule; the gate verdict and failed checks; and the
net return, gross return, turnover, trades, units traded, PSR and DSR of the same scores
decided by the bundle's rule (``rule_*``) and re-decided by plain argmax (``argmax_*``), each
backtested with the default ``BacktestPolicy`` on candles carrying the market's calendar;
buy-and-hold's net return; and what the gate itself saw (``gate_*``: its backtest's net return,
fill and bars a year, and the labelled bars its validation gate used, beside ours on candles
with the calendar: they differ where the gate's window candles lost the calendar).

Summary figures per variant (``<variant>_*``): markets where the rule lowered turnover, the
median turnover ratio rule/argmax, the median net-return difference rule - argmax, models the gates blocked and how
many of those lost money net, and models that lost money after costs yet passed (must be 0).
A plot of the three net returns per market goes to ``results/soundness.png``.

Run: ``.venv/bin/python benchmarks/run.py soundness``.
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from alphaops.data.candles import Candles
from alphaops.features import FeatureSpec, LabelRule
from alphaops.features.labels import make_labels
from alphaops.gates.backtest import backtest, buy_and_hold
from alphaops.gates.policy import BacktestPolicy, GatePolicy
from alphaops.gates.runner import run_gates
from alphaops.registry import open_registry
from alphaops.scoring import BundlePredictor
from alphaops.scoring._decision import ARGMAX
from alphaops.training import TrainingJob, publish_trained, train_job

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("ALPHAOPS_TEST_DATA", HERE.parents[1] / "shared" / "data"))
PLOT = HERE / "results" / "soundness.png"

HORIZON = 4
DEFAULT_LABEL = LabelRule.balanced("ternary", horizon=HORIZON)
OLD_LABEL = LabelRule(kind="ternary", horizon=HORIZON, threshold=0.01)
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},  # the LightGBM family's defaults: 300 rounds at most, early stopping 30
    "r60": {"n_estimators": 60, "early_stopping_rounds": 0},  # a fixed 60 rounds
}
SEED = 0
CRYPTO_CUT = datetime(2025, 6, 1, tzinfo=UTC)
TRAIN_BARS = 6000
JUDGE_BARS = 3000


class Market(NamedTuple):  # no dataclass: run.py loads this module outside sys.modules
    name: str
    symbol: str
    timeframe: str
    calendar: str
    train: Candles
    candles: Candles  # training bars plus judged bars
    judge_start_ms: int
    judged_bars: int
    note: str


def _load(symbol: str, timeframe: str) -> pd.DataFrame:
    return pd.read_parquet(DATA / f"{symbol}-{timeframe}.parquet")


def _market(
    name: str, symbol: str, timeframe: str, calendar: str, train_end: int, judge_end: int
) -> Market:
    frame = _load(symbol, timeframe)
    train_start = max(0, train_end - TRAIN_BARS)
    notes = []
    if train_end - train_start < TRAIN_BARS:
        notes.append(f"trained on {train_end - train_start} bars (fewer than {TRAIN_BARS} exist)")

    def cut(a: int, b: int) -> Candles:
        return Candles.from_frame(
            frame.iloc[a:b], symbol=symbol, timeframe=timeframe, calendar=calendar
        )

    judged = judge_end - train_end
    return Market(
        name=name,
        symbol=symbol,
        timeframe=timeframe,
        calendar=calendar,
        train=cut(train_start, train_end),
        candles=cut(train_start, judge_end),
        judge_start_ms=int(frame["timestamp"].iloc[train_end].value // 1_000_000),
        judged_bars=judged,
        note="; ".join(notes),
    )


def _markets() -> list[Market]:
    markets = []
    for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
        frame = _load(symbol, "1h")
        cut = int(np.searchsorted(frame["timestamp"].to_numpy(), pd.Timestamp(CRYPTO_CUT)))
        end = min(len(frame), cut + JUDGE_BARS)
        m = _market(symbol, symbol, "1h", "24/7", cut, end)
        if m.judged_bars < JUDGE_BARS:
            note = f"judged on {m.judged_bars} bars (the data ends 2025-06-30)"
            m = m._replace(note="; ".join(filter(None, [m.note, note])))
        markets.append(m)
    eur = len(_load("EURUSD", "1h"))
    markets.append(_market("EURUSD", "EURUSD", "1h", "fx", eur - JUDGE_BARS, eur))
    spx = len(_load("SPX", "1d"))
    markets.append(_market("SPX", "SPX", "1d", "XNYS", spx - 500, spx))
    return markets


def _shares(candles: Candles, rule: LabelRule) -> dict[str, float]:
    counts = make_labels(candles, rule).class_counts
    total = sum(counts.values())
    return {c: round(n / total, 4) for c, n in counts.items()}


def _labelled(candles: Candles, stamps: Any) -> int:
    frame = make_labels(candles, DEFAULT_LABEL).frame
    labelled = frame["timestamp"].to_numpy(dtype="datetime64[ms]").astype(np.int64)
    return int(np.isin(stamps, labelled).sum())


def _figures(result: Any) -> dict[str, float]:
    m = result.metrics
    return {
        "net": m["total_return"],
        "gross": m["gross_return"],
        "turnover": m["turnover"],
        "trades": m["trades"],
        "units": m["units_traded"],
        "exposure": m["exposure"],
        "psr": m["psr"],
        "dsr": m["dsr"],
    }


def _judge(market: Market, home: Path, params: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    job = TrainingJob(
        symbols=(market.symbol,),
        timeframe=market.timeframe,
        model="lightgbm",
        features=FeatureSpec.default(),
        label=DEFAULT_LABEL,
        params=params,
        seed=SEED,
    )
    out: dict[str, Any] = {
        "train_bars": len(market.train),
        "judged_bars": market.judged_bars,
        "train_first": market.train.frame["timestamp"].iloc[0].isoformat(),
        "judge_first": datetime.fromtimestamp(market.judge_start_ms / 1000, UTC).isoformat(),
        "label_shares_balanced": _shares(market.train, DEFAULT_LABEL),
        "label_shares_fixed_1pct": _shares(market.train, OLD_LABEL),
    }
    with open_registry(home) as registry:
        trained = train_job(job, {market.symbol: market.train})
        version = publish_trained(trained, registry)
        predictor = BundlePredictor(registry.load(version.ref))
        run = run_gates(
            predictor,
            market.candles,
            version=version.version,
            manifest_sha256=version.manifest_sha256,
            policy=GatePolicy(),
            window_start_ms=market.judge_start_ms,
            trials=1,
        )
    scores = run.candidate
    policy = BacktestPolicy()
    ruled = backtest(market.candles, scores, policy)
    argmax = backtest(market.candles, scores.with_decision(ARGMAX), policy)
    held = buy_and_hold(market.candles, scores.timestamps_ms, policy)
    gate_bt = run.backtests["candidate"]
    out |= {
        "rounds": trained.metrics.get("best_iteration"),
        "val_balanced_accuracy": trained.metrics.get("val_balanced_accuracy"),
        "decision_rule": (scores.decision or ARGMAX).describe(),
        "scored_bars": len(scores),
        "gate_passed": run.passed,
        "gate_failed": ", ".join(run.record.failed_checks) or "-",
        **{f"rule_{k}": v for k, v in _figures(ruled).items()},
        **{f"argmax_{k}": v for k, v in _figures(argmax).items()},
        "buy_and_hold_net": held.metrics["total_return"],
        "gate_net": gate_bt.metrics["total_return"],
        "gate_fill": gate_bt.fill,
        # labelled judged bars the validation gate used, and those the calendar allows
        "gate_validation_rows": run.record.gate("validation").data["candidate"].get("rows", 0),
        "validation_rows": _labelled(market.candles, scores.timestamps_ms),
        "gate_bars_per_year": gate_bt.metrics["periods_per_year"],
        "fill": ruled.fill,
        "bars_per_year": ruled.metrics["periods_per_year"],
        "seconds": round(time.perf_counter() - started, 1),
    }
    if market.note:
        out["note"] = market.note
    return out


def _plot(results: dict[str, dict[str, Any]]) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    names = list(results)
    x = np.arange(len(names))
    series = {
        "argmax": [results[n]["argmax_net"] for n in names],
        "decision rule": [results[n]["rule_net"] for n in names],
        "buy and hold": [results[n]["buy_and_hold_net"] for n in names],
    }
    fig, ax = plt.subplots(figsize=(12, 4.8))
    for i, (label, values) in enumerate(series.items()):
        ax.bar(x + (i - 1) * 0.27, np.asarray(values) * 100, 0.27, label=label)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(x, names, fontsize=8)
    ax.set_ylabel("net return after costs (%)")
    ax.set_title("Default LightGBM on unseen bars: argmax vs decision rule vs buy and hold")
    ax.legend()
    fig.tight_layout()
    PLOT.parent.mkdir(exist_ok=True)
    fig.savefig(PLOT, dpi=110)
    plt.close(fig)
    return str(PLOT.relative_to(HERE.parent))


def _finite(values: list[float]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def _summary(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    rows = list(results.values())
    ratios = _finite(
        [r["rule_turnover"] / r["argmax_turnover"] for r in rows if r["argmax_turnover"] > 0]
    )
    blocked = [r for r in rows if not r["gate_passed"]]
    passed = [r for r in rows if r["gate_passed"]]
    return {
        "rule_lowered_turnover": sum(r["rule_turnover"] < r["argmax_turnover"] for r in rows),
        "rule_never_traded": sum(r["rule_trades"] == 0 for r in rows),
        "median_turnover_ratio_rule_over_argmax": statistics.median(ratios) if ratios else None,
        "median_net_diff_rule_minus_argmax": statistics.median(
            r["rule_net"] - r["argmax_net"] for r in rows
        ),
        "rule_beat_argmax_net": sum(r["rule_net"] > r["argmax_net"] for r in rows),
        "rule_beat_buy_and_hold_net": sum(r["rule_net"] > r["buy_and_hold_net"] for r in rows),
        "argmax_lost_money_net": sum(r["argmax_net"] < 0 for r in rows),
        "rule_lost_money_net": sum(r["rule_net"] < 0 for r in rows),
        "gates_blocked": len(blocked),
        "blocked_lost_money_net": sum(r["rule_net"] < 0 for r in blocked),
        "blocked_never_traded": sum(r["rule_trades"] == 0 for r in blocked),
        "gates_passed": len(passed),
        # lost money after costs in our calendar-aware backtest or in the gate's own
        "passed_but_lost_money_net": sum(min(r["rule_net"], r["gate_net"]) < 0 for r in passed),
        "gate_calendar_mismatches": sum(
            r["gate_fill"] != r["fill"]
            or r["gate_bars_per_year"] != r["bars_per_year"]
            or r["gate_validation_rows"] != r["validation_rows"]
            for r in rows
        ),
    }


def run() -> dict[str, Any]:
    """Train, publish and gate one model per market and variant; return the figures."""
    policy = BacktestPolicy()
    figures: dict[str, Any] = {
        "label": DEFAULT_LABEL.describe(),
        "costs_bps_per_unit": policy.fee_bps + policy.slippage_bps,
        "mode": policy.mode,
        "seed": SEED,
    }
    markets = _markets()
    plotted: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-soundness-") as tmp:
        for variant, params in VARIANTS.items():
            figures[f"{variant}_params"] = params or "family defaults"
            results = {
                m.name: _judge(m, Path(tmp) / variant / m.name / "home", params) for m in markets
            }
            for name, r in results.items():
                figures |= {f"{variant}_{name}_{k}": v for k, v in r.items()}
            figures |= {f"{variant}_{k}": v for k, v in _summary(results).items()}
            plotted |= {f"{name}\n{variant}": r for name, r in results.items()}
    figures["plot"] = _plot(plotted)
    return figures


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2, default=str))
