"""The journal: every decision, fill and round trip, tied to the model version that made it.

Rows live in the registry's database (SQLite or PostgreSQL) in append-only tables. A
:class:`~alphaops.runtime.LivePredictor` given a :class:`Journal` records each decision
through a bounded queue and a background writer (a prediction never waits on disk); the bot
reports its fills with :meth:`Journal.record_fill`, and positions that return to flat become
round trips attributed to the version whose decision opened them.
"""

from alphaops.journal._journal import FillResult, Journal
from alphaops.journal._records import (
    Decision,
    DecisionRole,
    Fill,
    MonitorEvent,
    RoundTrip,
    Side,
    client_order_id,
    decision_of_order,
)
from alphaops.journal._writer import JournalConfig, PendingDecision, WriterStats

__all__ = [
    "Decision",
    "DecisionRole",
    "Fill",
    "FillResult",
    "Journal",
    "JournalConfig",
    "MonitorEvent",
    "PendingDecision",
    "RoundTrip",
    "Side",
    "WriterStats",
    "client_order_id",
    "decision_of_order",
]
