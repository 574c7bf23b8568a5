"""Import the fills users already have: a CSV of fills, or a freqtrade trade database.

Both importers hand one fill at a time, in order, to :meth:`Journal.record_fill`: every check
is the journal's, each fill is its own transaction, and importing again is safe (fills
already journaled are counted as duplicates and change nothing).

>>> import tempfile, pathlib
>>> from datetime import UTC, datetime
>>> from alphaops.journal import Decision, Journal
>>> from alphaops.registry import open_registry
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> reg = open_registry(folder / "home")
>>> journal = Journal(reg)
>>> t = datetime(2025, 1, 1, tzinfo=UTC)
>>> journal.write_decisions([Decision("0123456789ab-1", t, t, "BTCUSDT", "lightgbm", 3,
...     "0" * 64, "champion", None, None, 1, (0.1, 0.2, 0.7), "0" * 32)])
1
>>> _ = (folder / "fills.csv").write_text("time,side,qty,price,fee,decision_id,symbol\\n"
...     "2025-01-01T01:00:05Z,BUY,1,100,0.1,0123456789ab-1,\\n1735700400000,sell,1,110,0.11,,BTCUSDT\\n")
>>> import_fills_csv(journal, folder / "fills.csv").summary()
'fills.csv: 2 rows, 2 imported, 0 duplicates, 1 round trips, 0 skipped'
>>> import_fills_csv(journal, folder / "fills.csv").duplicates
2
>>> journal.close(); reg.close()
"""

from alphaops.journal.importers._common import ImportReport, Skipped
from alphaops.journal.importers._csv import CSV_OPTIONAL, CSV_REQUIRED, import_fills_csv
from alphaops.journal.importers._freqtrade import import_freqtrade

__all__ = [
    "CSV_OPTIONAL",
    "CSV_REQUIRED",
    "ImportReport",
    "Skipped",
    "import_fills_csv",
    "import_freqtrade",
]
