"""Position accounting: the fills of one book and symbol since it was last flat.

A position runs from flat to flat. Fills in its direction add to it, the others reduce it;
when it is flat again it becomes one round trip, priced at the volume-weighted entry and exit.
A single fill that would turn a long into a short (or back) is refused: report it as two
fills, one that closes and one that opens, so that each side has its own decision.

>>> from datetime import UTC, datetime
>>> t = datetime(2025, 1, 1, tzinfo=UTC)
>>> buy = OpenFill(1, t, "buy", 2.0, 100.0, 0.2, 0.0, "d1")
>>> sell = OpenFill(2, t, "sell", 2.0, 110.0, 0.22, 0.0, "d2")
>>> check_fill([buy], sell).closes, round(close_out([buy, sell]).net_pnl, 2)
(True, 19.58)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from alphaops.core.errors import DataValidationError

__all__ = ["Closed", "FillCheck", "OpenFill", "check_fill", "close_out", "position_of"]

_FLAT = 1e-9
"""Relative size below which a position is flat (float sums of partial fills)."""


@dataclass(frozen=True)
class OpenFill:
    """What accounting needs of one fill."""

    id: int
    at: datetime
    side: Literal["buy", "sell"]
    qty: float
    price: float
    fee: float
    funding: float
    decision_id: str | None

    @property
    def signed(self) -> float:
        """Return the quantity signed by side (+ buy, - sell)."""
        return self.qty if self.side == "buy" else -self.qty


@dataclass(frozen=True)
class FillCheck:
    """How a new fill changes the position: whether it opens it, and whether it closes it."""

    opens: bool
    closes: bool


@dataclass(frozen=True)
class Closed:
    """The figures of a position that is flat again."""

    direction: Literal["long", "short"]
    qty: float
    entry_price: float
    exit_price: float
    gross_pnl: float
    fees: float
    funding: float
    net_pnl: float
    net_return: float


def position_of(fills: Sequence[OpenFill]) -> float:
    """Return the signed position after ``fills`` (0.0 when flat)."""
    total = sum(f.signed for f in fills)
    scale = max((f.qty for f in fills), default=0.0)
    return 0.0 if abs(total) <= _FLAT * max(scale, 1.0) else total


def check_fill(open_fills: Sequence[OpenFill], fill: OpenFill) -> FillCheck:
    """Say how ``fill`` changes the open position; refuse out-of-order times and flips."""
    before = position_of(open_fills)
    if open_fills and fill.at < open_fills[-1].at:
        raise DataValidationError(
            f"fill at {fill.at.isoformat()} is older than the position's last fill at "
            f"{open_fills[-1].at.isoformat()}",
            fix="report fills of one book and symbol in the order they were executed",
        )
    after = position_of([*open_fills, fill])
    if before != 0.0 and after != 0.0 and (before > 0) != (after > 0):
        raise DataValidationError(
            f"a {fill.side} of {fill.qty} turns the position {before:+g} into {after:+g} in "
            "one fill",
            fix=f"report it as two fills: a {fill.side} of {abs(before):g} that closes the "
            f"position and a {fill.side} of {abs(after):g} that opens the new one",
        )
    return FillCheck(opens=before == 0.0, closes=before != 0.0 and after == 0.0)


def close_out(fills: Sequence[OpenFill]) -> Closed:
    """Return the figures of the round trip made of ``fills`` (flat at the end)."""
    direction: Literal["long", "short"] = "long" if fills[0].side == "buy" else "short"
    entries = [f for f in fills if f.side == fills[0].side]
    exits = [f for f in fills if f.side != fills[0].side]
    qty = sum(f.qty for f in entries)
    entry_price = sum(f.qty * f.price for f in entries) / qty
    exit_qty = sum(f.qty for f in exits)
    exit_price = sum(f.qty * f.price for f in exits) / exit_qty
    sign = 1.0 if direction == "long" else -1.0
    gross = sign * (exit_price * exit_qty - entry_price * qty)
    fees = sum(f.fee for f in fills)
    funding = sum(f.funding for f in fills)
    net = gross - fees - funding
    return Closed(
        direction,
        qty,
        entry_price,
        exit_price,
        gross,
        fees,
        funding,
        net,
        net / (entry_price * qty),
    )
