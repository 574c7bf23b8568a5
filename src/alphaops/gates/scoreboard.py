"""The scoreboard: every model of a symbol side by side on one window, with a status each.

Per model: action shares, confidence std and P10–P90. Against the champion: agreement (same
action on the same bar) and hard disagreement (one says BUY while the other says SELL).
Status: GO (gates passed, agreement within the policy's range, hard disagreement below its
limit), WAIT (gates passed, but agreement or hard disagreement outside), NO-GO (a gate failed,
or the gates never ran for that exact version). With no champion to compare with, a model
whose gates passed is GO.

>>> import numpy as np
>>> from alphaops.scoring import Scores
>>> p = np.eye(3, dtype=np.float32)
>>> a = Scores(np.arange(3), p[[2, 1, 0]], ("SELL", "HOLD", "BUY"))   # BUY, HOLD, SELL
>>> b = Scores(np.arange(3), p[[2, 1, 2]], ("SELL", "HOLD", "BUY"))   # BUY, HOLD, BUY
>>> [round(x, 3) for x in agreement(a, b)]
[0.667, 0.333]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alphaops.gates.policy import ScoreboardPolicy
from alphaops.gates.quality import quality_figures
from alphaops.gates.records import GateRecord
from alphaops.scoring import ACTIONS, Scores

__all__ = [
    "Scoreboard",
    "ScoreboardEntry",
    "ScoreboardRow",
    "agreement",
    "build_scoreboard",
    "render_scoreboard",
]


def agreement(a: Scores, b: Scores) -> tuple[float, float]:
    """Return (agreement, hard disagreement) of two models' actions on their common bars."""
    common, ia, ib = np.intersect1d(a.timestamps_ms, b.timestamps_ms, return_indices=True)
    if common.size == 0:
        return float("nan"), float("nan")
    x, y = a.actions[ia], b.actions[ib]
    return float(np.mean(x == y)), float(np.mean((x * y) == -1))


@dataclass(frozen=True, eq=False)
class ScoreboardEntry:
    """One model to show: its reference, role, scores on the window and gate record."""

    ref: str
    role: str
    scores: Scores
    record: GateRecord | None
    manifest_sha256: str


@dataclass(frozen=True)
class ScoreboardRow:
    """One line of the scoreboard."""

    ref: str
    role: str
    bars: int
    shares: dict[str, float]
    confidence_std: float
    confidence_p10: float
    confidence_p90: float
    agreement: float | None
    hard_disagreement: float | None
    gates: str
    status: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready copy (NaN as None)."""

        def clean(v: Any) -> Any:
            return None if isinstance(v, float) and not math.isfinite(v) else v

        return {k: clean(v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class Scoreboard:
    """Every model of one symbol on one window."""

    symbol: str
    champion: str | None
    window: str
    rows: list[ScoreboardRow] = field(default_factory=list)

    def row(self, ref: str) -> ScoreboardRow:
        """Return the row of ``ref``."""
        return next(r for r in self.rows if r.ref == ref)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready copy."""
        return {
            "symbol": self.symbol,
            "champion": self.champion,
            "window": self.window,
            "rows": [r.to_dict() for r in self.rows],
        }


def _gates(entry: ScoreboardEntry) -> tuple[str, str]:
    record = entry.record
    if record is None:
        return "NEVER RAN", "gates never ran"
    if record.manifest_sha256 != entry.manifest_sha256:
        return "STALE", "gate record is for another manifest"
    if not record.passed:
        return "FAIL", "failed " + ", ".join(record.failed_checks[:3])
    return "PASS", ""


def build_scoreboard(
    symbol: str,
    entries: list[ScoreboardEntry],
    *,
    window: str,
    policy: ScoreboardPolicy | None = None,
) -> Scoreboard:
    """Build the scoreboard; the first entry with role ``champion`` is the reference.

    Champions of other model types of the symbol are compared with it like candidates.
    """
    policy = policy or ScoreboardPolicy()
    champion = next((e for e in entries if e.role == "champion"), None)
    rows = []
    for e in entries:
        f = quality_figures(e.scores)
        gates, why = _gates(e)
        agree = hard = None
        if champion is not None and e is not champion:
            agree, hard = agreement(e.scores, champion.scores)
        if e is champion:
            status, reason = "CHAMPION", why or "live model"
        elif gates != "PASS":
            status, reason = "NO-GO", why
        elif agree is None:
            status, reason = "GO", "gates passed; no champion to compare with"
        elif (
            policy.min_agreement <= agree <= policy.max_agreement
            and hard is not None
            and hard < policy.max_hard_disagreement
        ):
            status, reason = "GO", "gates passed; agreement in range"
        else:
            status = "WAIT"
            reason = (
                f"agreement {agree:.0%} outside {policy.min_agreement:.0%}–"
                f"{policy.max_agreement:.0%}"
                if not policy.min_agreement <= agree <= policy.max_agreement
                else f"hard disagreement {hard:.0%} ≥ {policy.max_hard_disagreement:.0%}"
            )
        rows.append(
            ScoreboardRow(
                ref=e.ref,
                role=e.role,
                bars=len(e.scores),
                shares={a: f.get(f"share_{a}", float("nan")) for a in ACTIONS},
                confidence_std=f.get("confidence_std", float("nan")),
                confidence_p10=f.get("confidence_p10", float("nan")),
                confidence_p90=f.get("confidence_p90", float("nan")),
                agreement=agree,
                hard_disagreement=hard,
                gates=gates,
                status=status,
                reason=reason,
            )
        )
    return Scoreboard(symbol, champion.ref if champion else None, window, rows)


def _pct(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.0%}"


def render_scoreboard(board: Scoreboard) -> str:
    """Return the scoreboard as Markdown (what ``scoreboard_latest.md`` holds)."""
    lines = [
        f"# Scoreboard {board.symbol}",
        "",
        f"- window: {board.window}",
        f"- champion: {board.champion or 'none'}",
        "",
        "| model | role | bars | SELL | HOLD | BUY | conf std | P10–P90 | agree | hard dis. "
        "| gates | status | why |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in board.rows:
        spread = (
            "—"
            if not math.isfinite(r.confidence_p10)
            else f"{r.confidence_p10:.2f}–{r.confidence_p90:.2f}"
        )
        std = "—" if not math.isfinite(r.confidence_std) else f"{r.confidence_std:.3f}"
        lines.append(
            f"| {r.ref} | {r.role} | {r.bars} | {_pct(r.shares['SELL'])} | "
            f"{_pct(r.shares['HOLD'])} | {_pct(r.shares['BUY'])} | {std} | {spread} | "
            f"{_pct(r.agreement)} | {_pct(r.hard_disagreement)} | {r.gates} | "
            f"**{r.status}** | {r.reason} |"
        )
    return "\n".join(lines) + "\n"
