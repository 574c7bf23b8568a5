"""What the journal holds: decisions, fills and round trips, as immutable records."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from alphaops.core.errors import UsageError

__all__ = [
    "Decision",
    "DecisionRole",
    "Fill",
    "MonitorEvent",
    "RoundTrip",
    "Side",
    "client_order_id",
    "decision_of_order",
]

DecisionRole = Literal["champion", "challenger", "shadow", "fallback"]
"""Who made a decision: the champion, the canary challenger, the challenger in shadow (it
never acted) or a fallback model that served because the chosen one failed."""
Side = Literal["buy", "sell"]

_ORDER_ID = re.compile(r"^ao-([0-9a-f]{12}-[0-9a-f]{1,16})-([0-9]{1,3})$")


def client_order_id(decision_id: str, n: int = 0) -> str:
    """Return the client order id of the ``n``-th order placed for a decision.

    It fits the exchanges' limits (36 characters of ``[A-Za-z0-9-]``) and names the decision,
    so a fill reported with it is attributed without any lookup table.

    >>> client_order_id("3f9a0c1d2e4b-1a")
    'ao-3f9a0c1d2e4b-1a-0'
    >>> decision_of_order("ao-3f9a0c1d2e4b-1a-0"), decision_of_order("manual-42")
    ('3f9a0c1d2e4b-1a', None)
    """
    if not 0 <= n <= 999:
        raise UsageError(f"order number n={n} is out of range", fix="pass 0..999")
    coid = f"ao-{decision_id}-{n}"
    if _ORDER_ID.match(coid) is None:
        raise UsageError(
            f"{decision_id!r} is not a decision id of alphaops' journal",
            fix="pass Prediction.decision_id of a journaled prediction",
        )
    return coid


def decision_of_order(client_order_id: str) -> str | None:
    """Return the decision id named by an alphaops client order id, else ``None``."""
    match = _ORDER_ID.match(client_order_id)
    return None if match is None else match.group(1)


@dataclass(frozen=True)
class Decision:
    """One model decision as journaled: who decided what, on which bar and input."""

    id: str
    at: datetime
    """When the prediction was made (UTC)."""
    bar_time: datetime | None
    """The open time of the bar decided on (``None`` for ready feature rows)."""
    symbol: str
    model_type: str
    version: int
    manifest_sha256: str
    role: DecisionRole
    rollout_id: str | None
    routing_key: str | None
    action: int
    probabilities: tuple[float, ...]
    input_sha256: str
    """A 128-bit BLAKE2b hash of the exact model input."""
    input_row: tuple[float, ...] | None = None
    """The features of the decided bar (opt-in: ``JournalConfig.store_inputs``)."""

    @property
    def ref(self) -> str:
        """Return ``SYMBOL/TYPE/N`` of the deciding version."""
        return f"{self.symbol}/{self.model_type}/{self.version}"


@dataclass(frozen=True)
class Fill:
    """One execution reported by the bot (or imported)."""

    id: int
    book: str
    """The account or bot whose position this fill changes (positions are per book and symbol)."""
    symbol: str
    decision_id: str | None
    client_order_id: str | None
    at: datetime
    side: Side
    qty: float
    price: float
    fee: float
    """Fees paid, in quote currency (a rebate is negative)."""
    funding: float
    """Funding paid (positive) or received (negative), in quote currency."""
    exchange_order_id: str | None
    exchange_trade_id: str | None
    reason: str


@dataclass(frozen=True)
class RoundTrip:
    """A position from flat to flat, attributed to the version whose decision opened it."""

    id: int
    book: str
    symbol: str
    direction: Literal["long", "short"]
    qty: float
    opened_at: datetime
    closed_at: datetime
    entry_price: float
    exit_price: float
    gross_pnl: float
    fees: float
    funding: float
    net_pnl: float
    """``gross_pnl - fees - funding``, in quote currency."""
    net_return: float
    """``net_pnl`` over the entry notional."""
    first_fill_id: int
    last_fill_id: int
    entry_decision_id: str
    exit_decision_id: str | None
    """The decision that closed it (``None``: a stop, a manual close, an import)."""
    model_type: str
    version: int
    role: str
    exit_version: int | None
    exit_role: str | None

    @property
    def ref(self) -> str:
        """Return ``SYMBOL/TYPE/N`` of the version that opened the position."""
        return f"{self.symbol}/{self.model_type}/{self.version}"


@dataclass(frozen=True)
class MonitorEvent:
    """Something a monitor found (a drift breach, a win-rate change), journaled."""

    id: int
    at: datetime
    symbol: str
    model_type: str
    version: int | None
    kind: str
    severity: Literal["info", "warn", "alarm"]
    detail: dict[str, object]
    actor: str
