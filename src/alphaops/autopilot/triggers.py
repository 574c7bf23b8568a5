"""Emergency triggers: read the champion's live record and say whether it must be retrained.

The figures come from the journal (round trips of the champion version, decisions served by
a fallback) and the registry (open drift alarms); :func:`breaches` is a pure function of
them, and :class:`Hysteresis` makes a trigger fire only after ``consecutive`` breaching
checks in a row, so one bad hour does not start a retrain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from alphaops.autopilot.policy import EmergencyTriggers
from alphaops.journal import Journal, RoundTrip
from alphaops.registry import Registry
from alphaops.registry.refs import CHAMPION, ModelKey

__all__ = ["Hysteresis", "LiveRecord", "breaches", "read_live_record"]


@dataclass(frozen=True)
class LiveRecord:
    """What the triggers look at for one model, at one moment."""

    champion: int | None
    trades: int = 0
    win_rate: float | None = None
    drawdown: float | None = None
    open_alarms: tuple[str, ...] = ()
    """Open alarms no earlier emergency retrain answered (their summaries)."""
    alarm_ids: tuple[int, ...] = ()
    """Their ids, recorded by the retrain they fire so that they fire only once."""
    decisions: int = 0
    fallbacks: int = 0

    @property
    def fallback_rate(self) -> float | None:
        """Return the share of recent decisions served by a fallback."""
        return None if self.decisions == 0 else self.fallbacks / self.decisions


def _drawdown(trips: Sequence[RoundTrip]) -> float:
    equity = np.cumprod([1.0] + [1.0 + t.net_return for t in trips])
    return float(np.max(1.0 - equity / np.maximum.accumulate(equity)))


def read_live_record(
    registry: Registry,
    journal: Journal,
    key: ModelKey,
    triggers: EmergencyTriggers,
    *,
    now: datetime,
    since: datetime | None = None,
    answered: frozenset[int] = frozenset(),
) -> LiveRecord:
    """Read the champion's last ``min_trades`` round trips, the open alarms and the recent
    fallback decisions of ``key``.

    ``since`` (the last emergency retrain) limits the trades to those closed after it: an
    emergency fires again only on new evidence, never twice on the same losing trades;
    ``answered`` holds the ids of alarms an earlier emergency retrain already answered.
    """
    champion = registry.aliases(key).get(CHAMPION)
    # The autopilot's own alarms (no candidate passed, holding) are its answer, not a cause.
    opened = [
        a
        for a in registry.alarms(key, open_only=True)
        if not a.kind.startswith("autopilot_") and a.id not in answered
    ]
    alarms = tuple(a.summary for a in opened)
    ids = tuple(a.id for a in opened)
    if champion is None:
        return LiveRecord(None, open_alarms=alarms, alarm_ids=ids)
    trips = journal.round_trips(
        key, version=champion, since=since, until=now, last=triggers.min_trades
    )
    window_start = now - timedelta(seconds=triggers.window)
    if since is not None and since > window_start:
        window_start = since
    recent = journal.decisions(key, since=window_start, until=now)
    served = [d for d in recent if d.role != "shadow" and d.role != "challenger"]
    enough = len(trips) >= triggers.min_trades
    return LiveRecord(
        champion,
        trades=len(trips),
        win_rate=(sum(t.net_pnl > 0 for t in trips) / len(trips)) if enough else None,
        drawdown=_drawdown(trips) if enough else None,
        open_alarms=alarms,
        alarm_ids=ids,
        decisions=len(served),
        fallbacks=sum(d.role == "fallback" for d in served),
    )


def breaches(triggers: EmergencyTriggers, record: LiveRecord) -> list[str]:
    """Return why ``record`` breaches ``triggers`` (empty: it does not).

    >>> t = EmergencyTriggers(win_rate_below=0.4, drawdown_beyond=0.1, min_trades=10)
    >>> breaches(t, LiveRecord(3, trades=10, win_rate=0.3, drawdown=0.02))
    ['win rate 30.0% over the last 10 trades is below 40.0%']
    >>> breaches(t, LiveRecord(3, trades=4))   # too few trades to judge
    []
    """
    found = []
    if (
        triggers.win_rate_below is not None
        and record.win_rate is not None
        and record.win_rate < triggers.win_rate_below
    ):
        found.append(
            f"win rate {record.win_rate:.1%} over the last {record.trades} trades is below "
            f"{triggers.win_rate_below:.1%}"
        )
    if (
        triggers.drawdown_beyond is not None
        and record.drawdown is not None
        and record.drawdown > triggers.drawdown_beyond
    ):
        found.append(
            f"drawdown {record.drawdown:.1%} over the last {record.trades} trades is beyond "
            f"{triggers.drawdown_beyond:.1%}"
        )
    if triggers.drift_alarm and record.open_alarms:
        found.append("open alarm: " + "; ".join(record.open_alarms))
    rate = record.fallback_rate
    limit = triggers.fallback_rate_above
    if limit is not None and rate is not None and rate > limit:
        found.append(
            f"{record.fallbacks} of {record.decisions} recent decisions ({rate:.1%}) were "
            f"served by a fallback (limit {limit:.1%})"
        )
    return found


@dataclass
class Hysteresis:
    """Count breaching checks in a row per model; fire at ``consecutive``.

    >>> h = Hysteresis()
    >>> [h.update("k", ["bad"], 2), h.update("k", ["bad"], 2), h.update("k", [], 2)]
    [False, True, False]
    """

    streak: dict[str, int] = field(default_factory=dict)

    def update(self, key: str, found: Sequence[str], consecutive: int) -> bool:
        """Record one check of ``key``; return whether it fires now."""
        self.streak[key] = self.streak.get(key, 0) + 1 if found else 0
        return self.streak[key] >= consecutive

    def reset(self, key: str) -> None:
        """Forget ``key``'s streak (a retrain fired)."""
        self.streak.pop(key, None)
