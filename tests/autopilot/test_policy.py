"""Autopilot policy files: every key known, every value checked, errors that say the fix."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from alphaops.autopilot import AutopilotPolicy, Schedule, load_policy
from alphaops.core.errors import SpecError, UsageError

REPO = Path(__file__).resolve().parents[2]

from .conftest import model_policy  # noqa: E402


def test_the_documented_example_policy_is_valid() -> None:
    policy = load_policy(REPO / "docs" / "examples" / "autopilot.yaml")
    assert [str(m.key) for m in policy.models] == ["BTCUSDT/lightgbm"]
    (model,) = policy.models
    assert model.schedule.cron == "0 0 * * 0"
    assert model.on_no_candidate == "fallback"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"schedulee": {"every": "7d"}}, "schedulee"),
        ({"schedule": {"cron": "every sunday"}}, "cron"),
        ({"schedule": {"cron": "0 0 * * 0", "every": "7d"}}, "exactly one"),
        ({"schedule": {"every": "-3h"}}, "positive duration"),
        ({"cooldown": "soon"}, "cooldown"),
        ({"on_no_candidate": "fallback"}, "fallback_model"),
        ({"fallback_model": "lightgbm"}, "the model itself"),
        ({"triggers": {"win_rate_below": 1.5}}, "win_rate_below"),
        ({"rollout": {"steps": "shadow,150"}}, "steps"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_key(change: dict[str, object], named: str) -> None:
    with pytest.raises(SpecError) as caught:
        AutopilotPolicy.model_validate({"models": [model_policy(**change)]})
    assert named in str(caught.value)
    assert "Fix:" in str(caught.value)


def test_a_model_listed_twice_is_refused() -> None:
    with pytest.raises(SpecError, match="more than once"):
        AutopilotPolicy.model_validate({"models": [model_policy(), model_policy()]})


def test_unreadable_and_non_mapping_files_are_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read autopilot policy"):
        load_policy(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- models\n")
    with pytest.raises(SpecError, match="holds a list, not a mapping"):
        load_policy(tmp_path / "list.yaml")
    (tmp_path / "bad.yaml").write_text("models: [\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_policy(tmp_path / "bad.yaml")


def test_cron_schedules_follow_the_calendar_in_utc() -> None:
    weekly = Schedule(cron="30 2 * * 1")  # Mondays 02:30 UTC
    monday = datetime(2025, 3, 3, 2, 30, tzinfo=UTC)
    assert weekly.next_after(datetime(2025, 3, 1, tzinfo=UTC)) == monday
    assert weekly.next_after(monday) == datetime(2025, 3, 10, 2, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("dow", "weekday"),
    [("0", "Sunday"), ("7", "Sunday"), ("1", "Monday"), ("6", "Saturday"), ("fri", "Friday")],
)
def test_cron_days_of_the_week_are_numbered_as_cron_numbers_them(dow: str, weekday: str) -> None:
    fire = Schedule(cron=f"0 12 * * {dow}").next_after(datetime(2025, 3, 1, tzinfo=UTC))
    assert fire.strftime("%A") == weekday


def test_cron_weekday_ranges_and_steps_keep_their_meaning() -> None:
    start = datetime(2025, 3, 1, tzinfo=UTC)  # a Saturday
    workdays, moment = [], start
    for _ in range(5):
        moment = Schedule(cron="0 9 * * 1-5").next_after(moment)
        workdays.append(moment.strftime("%a"))
    assert workdays == ["Mon", "Tue", "Wed", "Thu", "Fri"]
    every_other_hour = Schedule(cron="0 */2 * * *").next_after(start)
    assert every_other_hour == datetime(2025, 3, 1, 2, tzinfo=UTC)
