"""deploy/prometheus/alerts.yml: valid for promtool, each alert fires (and stays quiet) as
specified in unit tests run by the real `promtool test rules`, and every metric it queries is
one the alphaops exporters really emit."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from alphaops.autopilot import AutopilotLog
from alphaops.registry import parse_key
from alphaops.serve.journal_metrics import JournalCollector
from alphaops.serve.metrics import ModelMetrics, RegistryCollector, TrainingMetrics

from .conftest import LGBM_KEY, Journaled

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: bash scripts/services.sh start installs Debian's "
                    "prometheus package", pytrace=False)  # fmt: skip
    return found


def _annotations() -> dict[str, dict[str, str]]:
    doc = yaml.safe_load(RULES.read_text())
    return {r["alert"]: r["annotations"] for g in doc["groups"] for r in g["rules"]}


def _fires(alert: str, labels: dict[str, str], at: str) -> dict[str, Any]:
    return {"eval_time": at, "alertname": alert,
            "exp_alerts": [{"exp_labels": labels, "exp_annotations": _annotations()[alert]}]}  # fmt: skip


def _quiet(alert: str, at: str) -> dict[str, Any]:
    return {"eval_time": at, "alertname": alert, "exp_alerts": []}


M = {"model": "BTCUSDT/lightgbm"}
CASES: list[dict[str, Any]] = [
    {  # 2 failures per 100 requests: 2% > 1% for 5 m
        "interval": "1m",
        "input_series": [
            {
                "series": 'training_requests_total{implementation="lightgbm",status="published"}',
                "values": "0+98x30",
            },
            {
                "series": 'training_requests_total{implementation="lightgbm",status="failed"}',
                "values": "0+2x30",
            },
        ],
        "alert_rule_test": [
            _quiet("TrainingErrorRateHigh", "4m"),
            _fires("TrainingErrorRateHigh", {"severity": "critical"}, "15m"),
        ],
    },
    {  # 0.5% failures: below the threshold
        "interval": "1m",
        "input_series": [
            {
                "series": 'training_requests_total{implementation="lightgbm",status="published"}',
                "values": "0+199x30",
            },
            {
                "series": 'training_requests_total{implementation="lightgbm",status="failed"}',
                "values": "0+1x30",
            },
        ],
        "alert_rule_test": [_quiet("TrainingErrorRateHigh", "20m")],
    },
    {  # candidate takes 13 s per training, baseline 10 s (1.3x); fast takes 11 s (1.1x)
        "interval": "1m",
        "input_series": [
            {
                "series": 'training_duration_seconds_sum{implementation="baseline"}',
                "values": "0+10x40",
            },
            {
                "series": 'training_duration_seconds_count{implementation="baseline"}',
                "values": "0+1x40",
            },
            {
                "series": 'training_duration_seconds_sum{implementation="candidate"}',
                "values": "0+13x40",
            },
            {
                "series": 'training_duration_seconds_count{implementation="candidate"}',
                "values": "0+1x40",
            },
            {"series": 'training_duration_seconds_sum{implementation="fast"}', "values": "0+11x40"},
            {
                "series": 'training_duration_seconds_count{implementation="fast"}',
                "values": "0+1x40",
            },
        ],
        "alert_rule_test": [
            _quiet("TrainingSlowerThanBaseline", "8m"),
            _fires(
                "TrainingSlowerThanBaseline",
                {"implementation": "candidate", "severity": "warning"},
                "30m",
            ),
        ],
    },
    {  # every cancellation takes ~0.8 s
        "interval": "1m",
        "input_series": [
            {"series": 'cancellation_latency_seconds_bucket{le="0.5"}', "values": "0x20"},
            {"series": 'cancellation_latency_seconds_bucket{le="1"}', "values": "0+5x20"},
            {"series": 'cancellation_latency_seconds_bucket{le="+Inf"}', "values": "0+5x20"},
        ],
        "alert_rule_test": [_fires("TrainingCancellationSlow", {"severity": "warning"}, "15m")],
    },
    {  # fast cancellations
        "interval": "1m",
        "input_series": [
            {"series": 'cancellation_latency_seconds_bucket{le="0.1"}', "values": "0+5x20"},
            {"series": 'cancellation_latency_seconds_bucket{le="+Inf"}', "values": "0+5x20"},
        ],
        "alert_rule_test": [_quiet("TrainingCancellationSlow", "15m")],
    },
    {
        "interval": "1m",
        "input_series": [
            {
                "series": 'alphaops_model_fallbacks_total{model="BTCUSDT/lightgbm"}',
                "values": "0 0 0 3 3 3 3 3 3 3 3 3 3 3 3",
            },
            {
                "series": 'alphaops_model_refused_versions_total{model="BTCUSDT/lightgbm"}',
                "values": "0 0 1 1 1 1",
            },
            {
                "series": 'alphaops_rollout_phase{model="BTCUSDT/lightgbm",phase="paused"}',
                "values": "1x30",
            },
            {"series": 'alphaops_drift_alarms_open{model="BTCUSDT/lightgbm"}', "values": "0 0 1 1"},
            {"series": 'alphaops_live_win_rate{model="BTCUSDT/lightgbm"}', "values": "0.41x90"},
            {"series": 'alphaops_expected_win_rate{model="BTCUSDT/lightgbm"}', "values": "0.55x90"},
            {"series": 'alphaops_live_round_trips{model="BTCUSDT/lightgbm"}', "values": "40x90"},
            # Another model as far below, but on 12 trades only: too few to judge.
            {"series": 'alphaops_live_win_rate{model="ETHUSDT/lightgbm"}', "values": "0.30x90"},
            {"series": 'alphaops_expected_win_rate{model="ETHUSDT/lightgbm"}', "values": "0.55x90"},
            {"series": 'alphaops_live_round_trips{model="ETHUSDT/lightgbm"}', "values": "12x90"},
        ],
        "alert_rule_test": [
            _quiet("ModelFallbacksFiring", "2m"),
            _fires("ModelFallbacksFiring", M | {"severity": "critical"}, "4m"),
            _quiet("ModelFallbacksFiring", "14m"),
            _fires("ModelVersionRefused", M | {"severity": "warning"}, "5m"),
            _quiet("RolloutPaused", "10m"),
            _fires("RolloutPaused", M | {"phase": "paused", "severity": "warning"}, "20m"),
            _fires("DriftAlarmOpen", M | {"severity": "warning"}, "3m"),
            _quiet("LiveWinRateBelowExpectation", "30m"),
            _fires("LiveWinRateBelowExpectation", M | {"severity": "warning"}, "80m"),
        ],
    },
    {  # an emergency found no passing candidate at minute 2; bots hold from minute 4 to 6
        "interval": "1m",
        "input_series": [
            {
                "series": 'alphaops_autopilot_needs_attention{model="BTCUSDT/lightgbm"}',
                "values": "0 0 1 1 1 1 1 1 1 1 1",
            },
            {
                "series": 'alphaops_autopilot_holding{model="BTCUSDT/lightgbm"}',
                "values": "0 0 0 0 1 1 1 0 0",
            },
        ],
        "alert_rule_test": [
            _quiet("AutopilotNeedsAttention", "5m"),
            _fires("AutopilotNeedsAttention", M | {"severity": "critical"}, "8m"),
            _quiet("AutopilotHolding", "3m"),
            _fires("AutopilotHolding", M | {"severity": "critical"}, "5m"),
            _quiet("AutopilotHolding", "8m"),
        ],
    },
]


def test_promtool_checks_the_rules() -> None:
    checked = subprocess.run([_promtool(), "check", "rules", str(RULES)],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 10 rules found" in checked.stdout


def test_promtool_unit_tests_fire_each_alert_when_and_only_when_specified(tmp_path: Path) -> None:
    spec = tmp_path / "alerts_test.yml"
    spec.write_text(yaml.safe_dump(
        {"rule_files": [str(RULES)], "evaluation_interval": "1m", "tests": CASES}
    ))  # fmt: skip
    tested = subprocess.run([_promtool(), "test", "rules", str(spec)],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_a_broken_expectation_makes_promtool_fail(tmp_path: Path) -> None:
    # The unit tests above can fail: promtool does report an alert that did not fire.
    wrong = [dict(CASES[1], alert_rule_test=[
        _fires("TrainingErrorRateHigh", {"severity": "critical"}, "20m")])]  # fmt: skip
    spec = tmp_path / "wrong_test.yml"
    spec.write_text(yaml.safe_dump({"rule_files": [str(RULES)], "tests": wrong}))
    tested = subprocess.run([_promtool(), "test", "rules", str(spec)],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert tested.returncode != 0


def emitted_metrics(journaled: Journaled) -> set[str]:
    """Return the name of every sample the alphaops exporters emit (every family touched)."""
    registry = journaled.registry
    collectors = CollectorRegistry()
    model_metrics = ModelMetrics(collectors)
    training = TrainingMetrics(collectors)
    collectors.register(RegistryCollector(registry, registry.list_models))
    collectors.register(JournalCollector(registry, registry.list_models))
    journaled.round_trip(100.0, 101.0, start=0)
    log = AutopilotLog(registry)
    log.append(log.new_run_id(), parse_key(LGBM_KEY), "scheduled", "triggered",
               at=datetime.now(UTC), reason="schedule")  # fmt: skip
    # Touch every labelled metric once so that its samples exist.
    for hook_kind in ("swapped", "refused", "fallback"):
        from alphaops.runtime import RuntimeEvent

        model_metrics.event_hook("BTCUSDT/logreg")(RuntimeEvent(0.0, hook_kind, 1, ""))  # type: ignore[arg-type]
    model_metrics.observe("BTCUSDT/logreg", journaled.decisions[0], 0.001)
    model_metrics.error("BTCUSDT/logreg", "AOPS-E001")
    training.started("lightgbm")
    training.cancel_requested()
    training.finished("lightgbm", "cancelled", seconds=1.0)
    training.progress(0)
    training.progress(0)
    return {
        s.name
        for family in text_string_to_metric_families(generate_latest(collectors).decode())
        for s in family.samples
    }


def test_every_metric_the_alerts_query_is_emitted_by_the_exporters(journaled: Journaled) -> None:
    emitted = emitted_metrics(journaled)
    queried = set(re.findall(r"\b((?:alphaops|training|cancellation)_[a-z_]+)", RULES.read_text()))
    queried -= {"alphaops_models", "alphaops_training", "alphaops_autopilot", "training_requests"}
    assert queried, "no metric found in the rules"
    assert queried <= emitted, f"queried but never emitted: {sorted(queried - emitted)}"
