"""The background writer's SQLite fast path stores exactly what SQLAlchemy would store."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from alphaops.core.errors import SpecError
from alphaops.journal import Decision, Journal, JournalConfig
from alphaops.registry import open_registry


def test_submitted_decisions_are_stored_byte_for_byte_like_synchronously_written_ones(
    tmp_path: Path,
) -> None:
    batch = np.linspace(-1.5, 2.5, 11, dtype=np.float32)[np.newaxis]
    at, bar_ms = 1_735_689_600.123456, 1_735_686_000_000
    probabilities = (0.1, 0.2, 0.7000000000000001)
    with open_registry(tmp_path / "home") as registry:
        with Journal(registry, JournalConfig(store_inputs=True)) as journal:
            journal.submit(
                ("aaaaaaaaaaaa-1", at, bar_ms, "BTCUSDT", "lightgbm", 3, "f" * 64, "shadow",
                 "r1", 42, -1, probabilities, batch)
            )  # fmt: skip
            assert journal.flush()
            [fast] = journal.decisions("BTCUSDT/lightgbm")
            journal.write_decisions(
                [
                    Decision(
                        "aaaaaaaaaaaa-2", datetime.fromtimestamp(at, UTC),
                        datetime.fromtimestamp(bar_ms / 1000, UTC), "BTCUSDT", "lightgbm", 3,
                        "f" * 64, "shadow", "r1", "42", -1, probabilities, fast.input_sha256,
                        tuple(float(v) for v in batch[0]),
                    )
                ]
            )  # fmt: skip
        with registry.database.read() as conn:
            rows = conn.exec_driver_sql("SELECT * FROM decisions ORDER BY id").all()
    assert [tuple(rows[0])[1:]] == [tuple(rows[1])[1:]]
    assert fast.input_row == tuple(float(v) for v in batch[0])
    assert fast.probabilities == probabilities


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"queue_rows": 0}, "queue_rows=0"),
        ({"writer": "fork"}, "writer='fork'"),
        ({"flush_interval": 1.0}, "unknown parameter 'flush_interval'"),
    ],
)
def test_a_bad_journal_config_is_a_spec_error_naming_the_field(
    fields: dict[str, object], needle: str
) -> None:
    with pytest.raises(SpecError, match=re.escape(needle)) as caught:
        JournalConfig(**fields)  # type: ignore[arg-type]
    assert "Fix:" in str(caught.value)
