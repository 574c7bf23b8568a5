"""The journal: every decision, fill and round trip, tied to the model version that made it.

Rows live in the registry's database (SQLite or PostgreSQL) in append-only tables. A
:class:`~alphaops.runtime.LivePredictor` given a :class:`Journal` records each decision
through a bounded queue and a background writer (a prediction never waits on disk); the bot
reports its fills with :meth:`Journal.record_fill`, and positions that return to flat become
round trips attributed to the version whose decision opened them. Fills a bot already
has come in with :func:`import_fills_csv` and :func:`import_freqtrade`.
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
from alphaops.journal.importers import (
    CSV_OPTIONAL,
    CSV_REQUIRED,
    ImportReport,
    Skipped,
    import_fills_csv,
    import_freqtrade,
)

__all__ = [
    "CSV_OPTIONAL",
    "CSV_REQUIRED",
    "Decision",
    "DecisionRole",
    "Fill",
    "FillResult",
    "ImportReport",
    "Journal",
    "JournalConfig",
    "MonitorEvent",
    "PendingDecision",
    "RoundTrip",
    "Side",
    "Skipped",
    "WriterStats",
    "client_order_id",
    "decision_of_order",
    "import_fills_csv",
    "import_freqtrade",
]
