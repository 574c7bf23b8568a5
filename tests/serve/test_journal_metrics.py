"""Live win rate and drift on /metrics, read from a real journal: a real LightGBM champion,
gated by the real gates on real candles, served on the 2018 crash with its decisions journaled,
traded with journaled fills, and drift-checked by the monitor."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from alphaops.serve import ServeConfig, create_app
from alphaops.serve.journal_metrics import JournalCollector

from .conftest import LGBM_KEY, Journaled

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _samples(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _get(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted({"model": LGBM_KEY, **labels}.items()))))


def test_metrics_report_the_champions_live_win_rate_beside_its_backtest_and_its_drift(
    journaled: Journaled,
) -> None:
    from fastapi.testclient import TestClient

    app = create_app(journaled.config, ServeConfig(anonymous_read=True, metrics_refresh_s=0))
    with TestClient(app) as client:
        before = _samples(client.get("/metrics").text)
        # No trade yet: the sample size says so and no win rate is made up.
        assert _get(before, "alphaops_live_round_trips") == 0
        assert _get(before, "alphaops_live_win_rate") is None
        # What the real backtest gate recorded for the champion.
        assert _get(before, "alphaops_expected_win_rate") == journaled.expected_win_rate
        assert 0.0 < journaled.expected_win_rate < 1.0
        # The monitor found the 2018 crash alarming (as it journaled it).
        [event] = journaled.journal.events(LGBM_KEY, kind="feature_drift")
        assert event.severity == "alarm"
        assert _get(before, "alphaops_drift_status", kind="feature_drift") == 2.0
        assert (
            _get(before, "alphaops_drift_last_finding_timestamp_seconds", kind="feature_drift")
            == event.at.timestamp()
        )
        assert _get(before, "alphaops_drift_status", kind="prediction_drift") is None
        assert _get(before, "alphaops_drift_alarms_open") == 1.0  # the registry's side

        journaled.round_trip(100.0, 103.0, start=0)  # +3
        journaled.round_trip(100.0, 101.0, start=2)  # +1
        journaled.round_trip(100.0, 98.0, start=4)  # -2
        journaled.journal.record_event(LGBM_KEY, "feature_drift", "warn", {"summary": "calmer"})
        after = _samples(client.get("/metrics").text)
    assert _get(after, "alphaops_live_round_trips") == 3
    assert _get(after, "alphaops_live_win_rate") == 2 / 3
    assert _get(after, "alphaops_drift_status", kind="feature_drift") == 1.0


def test_the_journal_is_read_again_only_after_a_move_or_the_refresh_interval(
    journaled: Journaled,
) -> None:
    now = [0.0]
    collector = JournalCollector(
        journaled.registry, journaled.registry.list_models, refresh_s=60, clock=lambda: now[0]
    )
    registry = CollectorRegistry()
    registry.register(collector)

    def scrape() -> Samples:
        return _samples(generate_latest(registry).decode())

    journaled.round_trip(100.0, 102.0, start=0)
    assert _get(scrape(), "alphaops_live_win_rate") == 1.0
    journaled.round_trip(100.0, 99.0, start=2)
    now[0] = 59.0
    assert _get(scrape(), "alphaops_live_win_rate") == 1.0  # cached: not re-read per scrape
    assert collector.reads == 1
    now[0] = 61.0
    assert _get(scrape(), "alphaops_live_win_rate") == 0.5  # stale after refresh_s
    assert collector.reads == 2
    journaled.round_trip(100.0, 97.0, start=4)
    journaled.registry.acknowledge_alarms(LGBM_KEY, reason="seen")  # moves the generation
    samples = scrape()
    assert collector.reads == 3
    assert _get(samples, "alphaops_live_win_rate") == 1 / 3
    assert _get(samples, "alphaops_live_round_trips") == 3
