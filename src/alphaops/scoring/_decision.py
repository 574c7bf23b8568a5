"""The decision rule: how a model's class probabilities become positions, bar after bar.

A model says how likely each class is; a bot needs a position. Plain argmax flips the position
whenever the most probable class changes, which on noisy probabilities is almost every bar,
and the costs of those trades eat whatever the model knows. A :class:`DecisionRule` trades
less, in three ways, each off at zero:

* ``min_confidence`` (the no-trade band): a bar signals BUY (SELL) only when BUY (SELL) is the
  most probable class *and* its probability is at least this.
* ``min_edge_over_cost``: a bar signals only when the expected edge, ``(p_BUY - p_SELL) x
  typical_move`` for a BUY (``p_WIN - p_LOSS`` for binary models; mirrored for a SELL), is at
  least this multiple of ``round_trip_cost_bps``. ``typical_move`` is the mean absolute
  forward return over the label horizon of the training rows labelled BUY or SELL (WIN),
  measured at training: the move a trading class stands for.
* ``min_hold_bars``: a position, once entered (or confirmed by a fresh signal of the same
  side), is kept for at least this many bars; an opposite signal inside that period is
  ignored.

A bar without a signal keeps the current position while its holding period runs, then goes
flat; a signal of the other side after the holding period reverses the position; a signal of
the same side restarts the holding period. So a BUY held for ``min_hold_bars = horizon`` bars
is exactly the bet its label describes (the close ``horizon`` bars later). An action is the
position to hold after the bar: -1 short, 0 flat, +1 long (binary models never go short).

The rule of all zeros (``DecisionRule()``) is plain argmax: every bar's action is the action
of its most probable class; bundles whose manifest has no rule are scored with it.

:func:`decide` runs a rule over a batch of bars; :class:`Decider` runs it one bar at a time
(the live runtime) and gives, bar for bar, exactly the batch's actions.

>>> import numpy as np
>>> p = np.array([[0.1, 0.3, 0.6], [0.2, 0.5, 0.3], [0.6, 0.3, 0.1], [0.2, 0.6, 0.2]])
>>> classes = ("SELL", "HOLD", "BUY")
>>> decide(p, classes).tolist()                                    # argmax
[1, 0, -1, 0]
>>> decide(p, classes, DecisionRule(min_hold_bars=2)).tolist()    # BUY kept 2 bars
[1, 1, -1, -1]
>>> decide(p, classes, DecisionRule(min_confidence=0.65)).tolist()  # nothing is sure enough
[0, 0, 0, 0]
>>> decider = Decider(classes, DecisionRule(min_hold_bars=2))
>>> [decider.update(row) for row in p]
[1, 1, -1, -1]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from pydantic import Field

from alphaops.core.errors import SpecError
from alphaops.core.specs import MAX_PERIOD, SpecModel, canonical_json, sha256_hex
from alphaops.inference import class_actions

__all__ = ["ARGMAX", "DEFAULT_ROUND_TRIP_COST_BPS", "Decider", "DecisionRule", "decide"]

DEFAULT_ROUND_TRIP_COST_BPS = 2 * (10.0 + 5.0)
"""Entering and leaving one position at the backtest gate's default fee (10 bps) plus
slippage (5 bps) per unit traded."""


class DecisionRule(SpecModel):
    """How class probabilities become positions: no-trade band, edge over cost, minimum hold.

    See the module docstring for the rule. Every field at zero is plain argmax.

    >>> rule = DecisionRule(min_confidence=0.5, min_hold_bars=4, min_edge_over_cost=1.0,
    ...     typical_move=0.008)
    >>> rule.describe()
    'act when p >= 0.5, expected edge >= 1x the 30 bps round trip (typical move 80 bps), hold >= 4 bars'
    >>> DecisionRule().is_argmax
    True
    """

    spec_label: ClassVar[str] = "decision rule"
    spec_example: ClassVar[str] = (
        '{"min_confidence": 0.5, "min_hold_bars": 4, "min_edge_over_cost": 1.0}'
    )

    min_confidence: float = Field(
        0.0,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="Act (BUY/SELL) only when that class is the most probable and its "
        "probability is at least this; 0 turns the band off.",
    )
    min_hold_bars: int = Field(
        0,
        ge=0,
        le=MAX_PERIOD,
        description="Bars a position is kept at least once entered or confirmed; 0 or 1 "
        "turns it off.",
    )
    min_edge_over_cost: float = Field(
        0.0,
        ge=0,
        allow_inf_nan=False,
        description="Act only when (p_side - p_opposite) x typical_move is at least this many "
        "round-trip costs; 0 turns the check off.",
    )
    round_trip_cost_bps: float = Field(
        DEFAULT_ROUND_TRIP_COST_BPS,
        ge=0,
        allow_inf_nan=False,
        description="Cost of entering and leaving a position, in basis points.",
    )
    typical_move: float | None = Field(
        None,
        gt=0,
        lt=1,
        allow_inf_nan=False,
        description="Mean absolute forward return over the label horizon of the training rows "
        "labelled BUY/SELL (WIN) (a fraction), measured at training; needed by the edge check.",
    )

    @property
    def is_argmax(self) -> bool:
        """Return whether the rule is plain argmax (no band, no edge check, no hold)."""
        return self.min_confidence == 0 and self.min_edge_over_cost == 0 and self.min_hold_bars <= 1

    @property
    def cost(self) -> float:
        """Return the round-trip cost as a fraction (30 bps -> 0.003)."""
        return self.round_trip_cost_bps / 10_000.0

    def check_usable(self, where: str = "decision rule") -> None:
        """Raise :class:`SpecError` when the edge check is on but no typical move is known."""
        if self.min_edge_over_cost > 0 and self.typical_move is None:
            raise SpecError(
                f"{where}: min_edge_over_cost={self.min_edge_over_cost:g} needs the typical "
                "move, which training measures, but the rule has none",
                fix="score with a rule recorded by training, or set min_edge_over_cost=0",
            )

    def with_typical_move(self, move: float) -> DecisionRule:
        """Return the rule with ``typical_move`` set (what training records in the bundle)."""
        return DecisionRule.model_validate(self.to_dict() | {"typical_move": float(move)})

    def describe(self) -> str:
        """Return the rule as one line."""
        if self.is_argmax:
            return "argmax on every bar"
        parts = []
        if self.min_confidence > 0:
            parts.append(f"act when p >= {self.min_confidence:g}")
        if self.min_edge_over_cost > 0:
            move = (
                "typical move unknown"
                if self.typical_move is None
                else f"typical move {self.typical_move * 10_000:.3g} bps"
            )
            parts.append(
                f"expected edge >= {self.min_edge_over_cost:g}x the "
                f"{self.round_trip_cost_bps:g} bps round trip ({move})"
            )
        if self.min_hold_bars > 1:
            parts.append(f"hold >= {self.min_hold_bars} bars")
        return ", ".join(parts)

    @property
    def rule_hash(self) -> str:
        """Return the sha256 of the canonical JSON of the rule."""
        return sha256_hex(canonical_json(self.to_dict()))

    def to_dict(self) -> dict[str, Any]:
        """Return the rule as JSON-ready data (what the manifest's ``decision`` holds)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DecisionRule:
        """Build a rule from plain data; raise :class:`SpecError` if it is invalid."""
        if not isinstance(data, Mapping):
            raise SpecError(
                f"a decision rule must be a mapping, not {type(data).__name__}",
                fix=f"pass e.g. {cls.spec_example}",
            )
        return cls.model_validate(dict(data))


ARGMAX = DecisionRule()
"""The rule of all zeros: every bar's action is the action of its most probable class."""


def signals(
    probabilities: npt.ArrayLike, actions: npt.NDArray[np.int8], rule: DecisionRule
) -> npt.NDArray[np.int8]:
    """Return each bar's signal (-1, 0, +1) before the holding period: band and edge applied.

    ``actions`` is the action of each class column (see
    :func:`~alphaops.inference.class_actions`). Not path dependent.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != actions.size:
        raise SpecError(
            f"probabilities of shape {p.shape} do not fit {actions.size} classes",
            fix="pass an (n, classes) array in the model's class order",
        )
    best = np.argmax(p, axis=1) if p.shape[0] else np.zeros(0, np.int64)
    out: npt.NDArray[np.int8] = np.array(actions[best], dtype=np.int8)
    if rule.min_confidence > 0:
        out[p[np.arange(p.shape[0]), best] < rule.min_confidence] = 0
    if rule.min_edge_over_cost > 0:
        rule.check_usable()
        assert rule.typical_move is not None
        up = p[:, actions == 1].sum(axis=1)
        down = p[:, actions == -1].sum(axis=1)
        # A model that cannot go short (LOSS/WIN) bets against its flat class.
        against_up = down if (actions == -1).any() else p[:, actions == 0].sum(axis=1)
        edge = np.where(out > 0, up - against_up, down - up) * rule.typical_move
        out[(out != 0) & (edge < rule.min_edge_over_cost * rule.cost)] = 0
    return out


def _step(position: int, age: int, signal: int, hold: int) -> tuple[int, int]:
    # One bar of the holding rule. ``age`` counts the bars since the position was entered or
    # last confirmed (0 on that bar); it is held ``age + 1`` bars once this bar arrives.
    if signal == position and position != 0:
        return position, 0
    if position != 0 and age + 1 < hold:
        return position, age + 1
    return signal, 0


def decide(
    probabilities: npt.ArrayLike,
    classes: Sequence[str],
    rule: DecisionRule = ARGMAX,
    *,
    actions: Mapping[str, int] | None = None,
) -> npt.NDArray[np.int8]:
    """Return the action (-1, 0, +1) of each bar of ``(n, C)`` probabilities under ``rule``.

    The bars are one path, oldest first: the holding period carries from bar to bar.
    ``actions`` maps class names to -1/0/+1 (default SELL/HOLD/BUY and LOSS/WIN).
    """
    table = class_actions(tuple(classes), actions, where="decide")
    signal = signals(probabilities, table, rule)
    if rule.min_hold_bars <= 1:
        return signal
    out = np.empty_like(signal)
    position, age = 0, 0
    for i, s in enumerate(signal.tolist()):
        position, age = _step(position, age, s, rule.min_hold_bars)
        out[i] = position
    return out


class Decider:
    """The :func:`decide` rule one bar at a time: :meth:`update` takes one bar's probabilities.

    Feeding bars one by one gives exactly :func:`decide` on the same bars. Not thread-safe:
    one decider follows one path of bars.
    """

    def __init__(
        self,
        classes: Sequence[str],
        rule: DecisionRule = ARGMAX,
        *,
        actions: Mapping[str, int] | None = None,
    ) -> None:
        rule.check_usable()
        self.classes = tuple(classes)
        self.rule = rule
        self._actions = class_actions(self.classes, actions, where="Decider")
        self.position = 0
        """The action of the last bar (the position held now)."""
        self.bars = 0
        """Bars decided so far."""
        self._age = 0

    def update(self, probabilities: npt.ArrayLike) -> int:
        """Decide one new bar from its class probabilities; return its action (-1, 0, +1)."""
        row = np.asarray(probabilities, dtype=np.float64).reshape(1, -1)
        signal = int(signals(row, self._actions, self.rule)[0])
        self.position, self._age = _step(self.position, self._age, signal, self.rule.min_hold_bars)
        self.bars += 1
        return self.position

    def reset(self) -> None:
        """Forget the path: flat, no bars seen."""
        self.position, self._age, self.bars = 0, 0, 0

    def __repr__(self) -> str:
        return f"Decider({self.rule.describe()}, position {self.position}, {self.bars} bars)"
