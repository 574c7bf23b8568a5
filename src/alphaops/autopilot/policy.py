"""What the autopilot retrains, when, and what it does when nothing better comes out.

An :class:`AutopilotPolicy` is read from YAML (:func:`load_policy`); every key is documented
and unknown keys are refused, like every alphaops spec.

>>> policy = AutopilotPolicy.model_validate({"models": [{
...     "job": {"symbols": ["BTCUSDT"], "timeframe": "1h", "model": "lightgbm",
...             "label": {"horizon": 4, "threshold": 0.005}},
...     "schedule": {"cron": "0 0 * * 0"},
...     "triggers": {"win_rate_below": 0.4, "min_trades": 20}}]})
>>> (model,) = policy.models
>>> str(model.key), model.schedule.cron, model.cooldown
('BTCUSDT/lightgbm', '0 0 * * 0', 86400.0)
>>> AutopilotPolicy.model_validate({"models": [], "max_jobs": 2})
Traceback (most recent call last):
...
alphaops.core.errors.SpecError: invalid autopilot policy: ...
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import yaml
from pydantic import Field, field_validator, model_validator

from alphaops.core.errors import SpecError, UsageError
from alphaops.core.specs import SpecModel
from alphaops.registry.refs import ModelKey, parse_key
from alphaops.rollout.plan import parse_interval, parse_steps
from alphaops.training.job import ModelFamily, TrainingJob

__all__ = [
    "AutopilotPolicy",
    "Budget",
    "EmergencyTriggers",
    "ModelPolicy",
    "RolloutPolicy",
    "Schedule",
    "load_policy",
]

SafeAction = Literal["keep", "fallback", "hold"]


def _duration(value: object, what: str) -> float:
    # Durations are written like rollout intervals ("90s", "15m", "1h", "7d") or as seconds.
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
        if seconds > 0:
            return seconds
    elif isinstance(value, str):
        try:
            return parse_interval(value)
        except UsageError:
            pass
    raise ValueError(f"{what} {value!r} is not a positive duration (e.g. 90s, 15m, 1h, 7d)")


_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _cron_trigger(expression: str) -> Any:
    # Standard cron numbers Sunday 0 (or 7) .. Saturday 6; APScheduler 3 numbers Monday 0.
    # Day numbers are written as names, which both read alike (a step after '/' stays).
    try:
        from apscheduler.triggers.cron import CronTrigger
    except ImportError as exc:
        raise UsageError(
            "cron schedules need APScheduler, which is not installed",
            fix="pip install 'alphaops[autopilot]', or write the schedule as {every: 7d}",
        ) from exc

    fields = expression.split()
    if len(fields) == 5:
        fields[4] = re.sub(
            r"(?<![/\d])(\d+)", lambda m: _DAYS[int(m[1])] if int(m[1]) < 8 else m[1], fields[4]
        )
    return CronTrigger.from_crontab(" ".join(fields), timezone=UTC)


class Schedule(SpecModel):
    """When a model is retrained on schedule: a cron expression or a fixed interval (one).

    Cron expressions have the standard five fields, in UTC, with days of the week numbered
    as cron does (0 or 7 Sunday, 1 Monday … 6 Saturday) or named (``mon-fri``).
    """

    spec_label: ClassVar[str] = "schedule"
    spec_example: ClassVar[str] = '{"cron": "0 0 * * 0"} or {"every": "7d"}'

    cron: str | None = Field(None, description="Five-field cron expression, in UTC.")
    every: float | None = Field(
        None, description="Retrain this long after the newest version (e.g. '7d')."
    )

    @field_validator("every", mode="before")
    @classmethod
    def _every(cls, value: object) -> float | None:
        return None if value is None else _duration(value, "every")

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                _cron_trigger(value)
            except ValueError as exc:
                raise ValueError(
                    f"cron {value!r} is not a five-field cron expression: {exc}"
                ) from exc
        return value

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.cron is None) == (self.every is None):
            raise SpecError(
                f"invalid schedule: give exactly one of 'cron' and 'every' (got cron={self.cron!r}, "
                f"every={self.every!r})",
                fix="write e.g. {cron: '0 0 * * 0'} or {every: 7d}",
            )
        return self

    def next_after(self, moment: datetime) -> datetime:
        """Return the first scheduled time strictly after ``moment`` (UTC).

        >>> t = datetime(2025, 1, 1, 12, tzinfo=UTC)   # a Wednesday
        >>> Schedule(cron="0 0 * * 0").next_after(t).isoformat()
        '2025-01-05T00:00:00+00:00'
        >>> Schedule(every="7d").next_after(t).isoformat()
        '2025-01-08T12:00:00+00:00'
        """
        if self.every is not None:
            return moment + timedelta(seconds=self.every)
        assert self.cron is not None
        fire = _cron_trigger(self.cron).get_next_fire_time(None, moment + timedelta(seconds=1))
        if fire is None:  # pragma: no cover - a five-field cron always fires again
            raise UsageError(f"cron {self.cron!r} never fires again", fix="fix the schedule")
        result: datetime = fire.astimezone(UTC)
        return result


class EmergencyTriggers(SpecModel):
    """What makes the autopilot retrain a model before its schedule (all optional)."""

    spec_label: ClassVar[str] = "emergency triggers"
    spec_example: ClassVar[str] = '{"win_rate_below": 0.4, "min_trades": 20, "drift_alarm": true}'

    win_rate_below: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Fire when the champion's win rate over its last trades is below.",
    )
    min_trades: int = Field(20, ge=1, description="Trades the win rate and drawdown look at.")
    drawdown_beyond: float | None = Field(
        None, gt=0, lt=1, description="Fire when the champion's last trades drew down more."
    )
    drift_alarm: bool = Field(True, description="Fire on an open drift alarm of the model.")
    fallback_rate_above: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="Fire when more than this share of recent decisions were served by a "
        "fallback because the champion failed.",
    )
    window: float = Field(86400.0, description="How far back the fallback rate looks (e.g. '1d').")
    consecutive: int = Field(
        2, ge=1, description="Checks in a row that must breach before it fires (hysteresis)."
    )

    @field_validator("window", mode="before")
    @classmethod
    def _window(cls, value: object) -> float:
        return _duration(value, "window")


class RolloutPolicy(SpecModel):
    """How a retrained candidate that passed its gates is rolled out."""

    spec_label: ClassVar[str] = "rollout policy"
    spec_example: ClassVar[str] = '{"steps": "shadow,10,50,100", "interval": "1h"}'

    steps: str = Field("shadow,10,50,100", description="Rollout steps, as `rollout start`.")
    interval: float = Field(3600.0, description="Analysis interval of each step (e.g. '1h').")
    max_failures: int = Field(3, ge=1, description="Failed intervals that roll it back.")

    @field_validator("interval", mode="before")
    @classmethod
    def _interval(cls, value: object) -> float:
        return _duration(value, "interval")

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: str) -> str:
        try:
            parse_steps(value)
        except UsageError as exc:
            raise ValueError(exc.message) from exc
        return value


class ModelPolicy(SpecModel):
    """One model the autopilot looks after: its training job, schedule, triggers, safety."""

    spec_label: ClassVar[str] = "autopilot model"
    spec_example: ClassVar[str] = (
        '{"job": {...}, "schedule": {"every": "7d"}, "triggers": {"win_rate_below": 0.4}}'
    )

    job: TrainingJob = Field(description="The training job (one symbol, or pooled).")
    schedule: Schedule = Field(description="When it is retrained on schedule.")
    triggers: EmergencyTriggers = Field(default_factory=lambda: EmergencyTriggers())
    cooldown: float = Field(
        86400.0, description="No new retrain of this model sooner after the last (e.g. '24h')."
    )
    train_bars: int | None = Field(
        None, ge=64, description="Bars each retrain learns from (default: all before the gates)."
    )
    gate_bars: int = Field(
        720,
        ge=64,
        description="The most recent bars, kept out of training, that the gates judge on.",
    )
    rollout: RolloutPolicy = Field(default_factory=lambda: RolloutPolicy())
    on_no_candidate: SafeAction = Field(
        "keep",
        description="After an emergency retrain that did not pass: keep the champion (and "
        "raise an alarm), retrain the fallback model type, or hold (serve HOLD).",
    )
    fallback_model: ModelFamily | None = Field(
        None, description="The simpler model type `fallback` retrains (e.g. random_forest)."
    )
    refresh: Literal["store", "download"] = Field(
        "store",
        description="Where each retrain's candles come from: the store as it is, or an "
        "incremental ccxt download into the store first (needs alphaops[download]).",
    )
    exchange: str | None = Field(
        None, description="ccxt exchange id for refresh: download (default: the config's)."
    )
    acknowledge_drift: bool = Field(
        True,
        description="When a retrain fired by a drift alarm passes its gates, acknowledge the "
        "alarm (audited) so its rollout can finish.",
    )

    @field_validator("cooldown", mode="before")
    @classmethod
    def _cooldown(cls, value: object) -> float:
        return _duration(value, "cooldown")

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.on_no_candidate == "fallback" and self.fallback_model is None:
            raise SpecError(
                f"invalid autopilot model {self.key}: on_no_candidate 'fallback' needs fallback_model",
                fix="add e.g. fallback_model: random_forest, or choose keep or hold",
            )
        if self.fallback_model is not None and self.fallback_model == self.job.model:
            raise SpecError(
                f"invalid autopilot model {self.key}: fallback_model {self.fallback_model!r} is "
                "the model itself",
                fix="name a simpler model type, e.g. random_forest",
            )
        return self

    @property
    def key(self) -> ModelKey:
        """Return the registry key the job publishes under (``SYMBOL/TYPE``)."""
        return parse_key(f"{self.job.registry_symbol}/{self.job.model}")


class Budget(SpecModel):
    """How much retraining the autopilot may do in any 24 hours (all models together)."""

    spec_label: ClassVar[str] = "budget"
    spec_example: ClassVar[str] = '{"retrains_per_day": 6, "training_minutes_per_day": 120}'

    retrains_per_day: int = Field(12, ge=1, description="Retrains started in any 24 hours.")
    training_minutes_per_day: float = Field(
        240.0, gt=0, description="Training time spent in any 24 hours."
    )


class AutopilotPolicy(SpecModel):
    """The autopilot's whole policy: the models, the budget, the concurrency, the pace."""

    spec_label: ClassVar[str] = "autopilot policy"
    spec_example: ClassVar[str] = "see docs/examples/autopilot.yaml"

    models: tuple[ModelPolicy, ...] = Field(description="The models to look after.")
    budget: Budget = Field(default_factory=lambda: Budget())
    max_concurrent: int = Field(1, ge=1, le=64, description="Retrains running at once.")
    check_every: float = Field(
        300.0, description="How often the service checks schedules and triggers (e.g. '5m')."
    )

    @field_validator("check_every", mode="before")
    @classmethod
    def _check_every(cls, value: object) -> float:
        return _duration(value, "check_every")

    @model_validator(mode="after")
    def _unique(self) -> Self:
        keys = [str(m.key) for m in self.models]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise SpecError(
                f"invalid autopilot policy: model(s) {repeated} appear more than once",
                fix="list each SYMBOL/TYPE once",
            )
        return self

    def model(self, key: ModelKey | str) -> ModelPolicy:
        """Return the policy of ``key``; :class:`UsageError` if the policy has none."""
        for m in self.models:
            if str(m.key) == str(key):
                return m
        raise UsageError(
            f"the autopilot policy has no model {key}",
            fix="use one of " + ", ".join(str(m.key) for m in self.models),
        )


def load_policy(path: Path | str) -> AutopilotPolicy:
    """Read and validate an autopilot policy file (YAML or JSON)."""
    path = Path(path)
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(
            f"cannot read autopilot policy {path}: {exc.strerror}", fix="check the path"
        ) from exc
    except yaml.YAMLError as exc:
        raise SpecError(
            f"autopilot policy {path} is not valid YAML: {exc}",
            fix="fix the file; docs/examples/autopilot.yaml is a valid example",
        ) from exc
    if not isinstance(data, dict):
        raise SpecError(
            f"autopilot policy {path} holds a {type(data).__name__}, not a mapping",
            fix="write 'models:' at the top level; see docs/examples/autopilot.yaml",
        )
    return AutopilotPolicy.model_validate(data)
