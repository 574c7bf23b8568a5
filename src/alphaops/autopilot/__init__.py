"""The autopilot: scheduled and emergency retraining that always goes through gates and a rollout.

A policy (:func:`load_policy`) names the models to look after, their training jobs, schedules
(cron or interval), emergency triggers (win rate, drawdown, drift alarm, fallback rate) with
hysteresis, cooldowns, a compute budget and the safe action when no candidate passes.
:class:`Autopilot` runs one pass at a time (:meth:`Autopilot.check`); ``alphaops autopilot
run`` (:func:`~alphaops.autopilot.service.run_service`) runs it on APScheduler, and
:class:`~alphaops.autopilot.service.AutopilotThread` embeds it in a bot's process.
"""

from alphaops.autopilot._log import FINAL_STEPS, AutopilotLog, Run, Step
from alphaops.autopilot.engine import Autopilot, CandleSource, Firing, ModelStatus
from alphaops.autopilot.policy import (
    AutopilotPolicy,
    Budget,
    EmergencyTriggers,
    ModelPolicy,
    RolloutPolicy,
    Schedule,
    load_policy,
)
from alphaops.autopilot.triggers import Hysteresis, LiveRecord, breaches

__all__ = [
    "FINAL_STEPS",
    "Autopilot",
    "AutopilotLog",
    "AutopilotPolicy",
    "Budget",
    "CandleSource",
    "EmergencyTriggers",
    "Firing",
    "Hysteresis",
    "LiveRecord",
    "ModelPolicy",
    "ModelStatus",
    "RolloutPolicy",
    "Run",
    "Schedule",
    "Step",
    "breaches",
    "load_policy",
]
