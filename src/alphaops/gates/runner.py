"""Run every gate on one candidate (and its champion) over one out-of-sample window.

The window defaults to the bars after the candidate's training data (``manifest.data.end``)
up to the end of the candles given. Bars before the window are used only to warm features
up. Candidate and champion are scored through the same :class:`BundlePredictor` path and
judged on the same bars.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from alphaops._version import __version__
from alphaops.core.errors import InsufficientDataError
from alphaops.data.candles import Candles
from alphaops.gates.backtest import BacktestResult, backtest, backtest_gate, buy_and_hold
from alphaops.gates.lookahead import lookahead_audit
from alphaops.gates.policy import GatePolicy
from alphaops.gates.quality import quality_gate
from alphaops.gates.records import GateRecord
from alphaops.gates.results import GateOutcome
from alphaops.gates.validation import validation_gate
from alphaops.scoring import BundlePredictor, Scores, label_rule_of

__all__ = ["GateRun", "default_window_start", "evaluation_candles", "run_gates", "run_quality"]

_MARGIN_BARS = 8


@dataclass(frozen=True, eq=False)
class GateRun:
    """A finished gate run: the record to store, plus the arrays the report plots."""

    record: GateRecord
    candidate: Scores
    champion: Scores | None
    backtests: dict[str, BacktestResult] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Return whether every gate passed."""
        return self.record.passed


def default_window_start(predictor: BundlePredictor) -> int:
    """Return the first bar after the model's training data (ms)."""
    end = predictor.manifest.data.end
    end = end if end.tzinfo else end.replace(tzinfo=UTC)
    return int(end.timestamp() * 1000) + predictor.timeframe.milliseconds


def evaluation_candles(
    candles: Candles, *, start_ms: int, end_ms: int | None, warmup_bars: int
) -> Candles:
    """Return the candles of the window plus ``warmup_bars`` (and a margin) before it."""
    stamps = candles.timestamps_ms
    first = int(np.searchsorted(stamps, start_ms))
    last = len(stamps) if end_ms is None else int(np.searchsorted(stamps, end_ms))
    if first >= last:
        window = f"{_iso(start_ms)} .. {_iso(end_ms) if end_ms else 'end'}"
        raise InsufficientDataError(
            f"no {candles.symbol} {candles.timeframe} candles in the gate window {window} "
            f"(data ends {_iso(int(stamps[-1]))})",
            fix="load newer data, or pass --window START..END inside the data "
            "(e.g. --window 2025-01-01..2025-03-01)",
        )
    begin = max(0, first - warmup_bars - _MARGIN_BARS)
    return Candles.from_frame(
        candles.frame.iloc[begin:last],
        symbol=candles.symbol,
        timeframe=candles.timeframe,
        calendar=candles.calendar,  # fills, annualisation and label horizons follow it
    )


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()


def _window(
    candidate: BundlePredictor,
    champion: BundlePredictor | None,
    candles: Candles,
    start_ms: int | None,
    end_ms: int | None,
) -> tuple[Candles, int]:
    start = default_window_start(candidate) if start_ms is None else start_ms
    warmup = max(candidate.warmup_bars, champion.warmup_bars if champion else 0)
    market = candidate.contract.calendar
    if candles.calendar.continuous and not market.continuous:
        # Candles given without a calendar are judged on the market's the model was trained on.
        candles = candles.with_calendar(market)
    return evaluation_candles(candles, start_ms=start, end_ms=end_ms, warmup_bars=warmup), start


def run_quality(
    candidate: BundlePredictor,
    candles: Candles,
    *,
    policy: GatePolicy | None = None,
    window_start_ms: int | None = None,
    window_end_ms: int | None = None,
) -> tuple[GateOutcome, Scores]:
    """Run only the quality gate; return its outcome and the scores it judged."""
    policy = policy or GatePolicy()
    context, start = _window(candidate, None, candles, window_start_ms, window_end_ms)
    scores = candidate.score(context, start_ms=start)
    return quality_gate(scores, policy.quality), scores


def _common(a: Scores, b: Scores | None) -> tuple[Scores, Scores | None]:
    if b is None:
        return a, None
    both = np.intersect1d(a.timestamps_ms, b.timestamps_ms)
    return a.select(np.isin(a.timestamps_ms, both)), b.select(np.isin(b.timestamps_ms, both))


def run_gates(
    candidate: BundlePredictor,
    candles: Candles,
    *,
    version: int,
    manifest_sha256: str,
    champion: BundlePredictor | None = None,
    champion_ref: str | None = None,
    policy: GatePolicy | None = None,
    window_start_ms: int | None = None,
    window_end_ms: int | None = None,
    trials: int = 1,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> GateRun:
    """Run the quality, validation, backtest and lookahead gates; return the run.

    ``trials`` is the number of candidates the registry holds for the model (for the DSR).
    """
    policy = policy or GatePolicy()
    context, start = _window(candidate, champion, candles, window_start_ms, window_end_ms)
    mine = candidate.score(context, start_ms=start)
    theirs = champion.score(context, start_ms=start) if champion is not None else None
    quality = quality_gate(mine, policy.quality)
    validation = validation_gate(
        mine,
        context,
        label_rule_of(candidate.manifest),
        champion=theirs,
        policy=policy.validation,
    )
    same_mine, same_theirs = _common(mine, theirs)
    tests = {
        "candidate": backtest(context, same_mine, policy.backtest, trials=trials),
        "buy_and_hold": buy_and_hold(context, same_mine.timestamps_ms, policy.backtest),
    }
    if same_theirs is not None:
        tests["champion"] = backtest(context, same_theirs, policy.backtest, name="champion")
    backtested = backtest_gate(
        tests["candidate"],
        champion=tests.get("champion"),
        benchmark=tests["buy_and_hold"],
        policy=policy.backtest,
    )
    audit = lookahead_audit(candidate, context, mine, policy.lookahead)
    gates = (quality, validation, backtested, audit)
    last = int(mine.timestamps_ms[-1]) if len(mine) else start
    record = GateRecord(
        symbol=candidate.manifest.symbol,
        model_type=candidate.manifest.model_type,
        version=version,
        manifest_sha256=manifest_sha256,
        champion=champion_ref,
        passed=all(g.passed for g in gates),
        gates=gates,
        window_start=datetime.fromtimestamp(start / 1000, tz=UTC),
        window_end=datetime.fromtimestamp(last / 1000, tz=UTC),
        policy=policy.to_dict(),
        policy_hash=policy.policy_hash,
        run_at=clock(),
        code_version=__version__,
    )
    return GateRun(record, mine, theirs, tests)
