"""Run the autopilot for good: a long-lived service, or a thread inside a bot's process.

APScheduler runs :meth:`Autopilot.check <alphaops.autopilot.Autopilot.check>` every
``check_every`` (one at a time: a check still running when the next is due is coalesced, not
stacked). Stopping sets the autopilot's cancel token: a training under way stops at its next
check and its run ends ``cancelled``; no new step starts; the scheduler waits for the running
check to return. Training runs in a child process (``executor="process"``), so a bot that
embeds the autopilot keeps its hot path free.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from alphaops.autopilot._log import Run
from alphaops.autopilot.engine import Autopilot
from alphaops.autopilot.policy import AutopilotPolicy
from alphaops.core.config import AlphaOpsConfig
from alphaops.core.errors import UsageError

__all__ = ["AutopilotThread"]

_log = logging.getLogger("alphaops.autopilot")


class AutopilotThread:
    """The autopilot on a background scheduler; :meth:`start`, then :meth:`stop`.

    ``on_runs`` is called with the runs of every check that started any; ``errors`` keeps the
    exceptions of checks that failed (logged, passed to ``on_error``, and retried at the next
    check).

    In a bot (``tests/autopilot/test_autopilot_service.py`` runs this)::

        pilot = AutopilotThread(config, load_policy("autopilot.yaml")).start()
        ...                        # the bot trades with its LivePredictor
        pilot.stop()               # at shutdown: the running step ends cleanly
    """

    def __init__(
        self,
        config: AlphaOpsConfig,
        policy: AutopilotPolicy,
        *,
        executor: str = "process",
        ray_address: str | None = None,
        on_runs: Callable[[list[Run]], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        try:
            from apscheduler.schedulers.background import BackgroundScheduler
            from apscheduler.triggers.interval import IntervalTrigger
        except ImportError as exc:
            raise UsageError(
                "the autopilot service needs APScheduler, which is not installed",
                fix="pip install 'alphaops[autopilot]'",
            ) from exc

        self.pilot = Autopilot(config, policy, executor=executor, ray_address=ray_address)
        self.on_runs = on_runs
        self.on_error = on_error
        self.clock = clock
        self.errors: list[BaseException] = []
        self.checks = 0
        self._idle = threading.Event()
        self._idle.set()
        self._scheduler: Any = BackgroundScheduler(
            timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1}
        )
        self._scheduler.add_job(
            self._check,
            IntervalTrigger(seconds=policy.check_every, timezone=UTC),
            id="autopilot-check",
            next_run_time=datetime.now(UTC),
        )

    def _check(self) -> None:
        if self.pilot.cancel.cancelled:
            return
        self._idle.clear()
        try:
            runs = self.pilot.check(self.clock())
            if runs and self.on_runs is not None:
                self.on_runs(runs)
        except Exception as exc:  # kept, reported, and retried at the next check
            self.errors.append(exc)
            _log.error("autopilot check failed: %r", exc)
            if self.on_error is not None:
                self.on_error(exc)
        finally:
            self.checks += 1
            self._idle.set()

    def start(self) -> AutopilotThread:
        """Start checking now and every ``check_every``."""
        self._scheduler.start()
        return self

    def stop(self, timeout_s: float = 300.0) -> bool:
        """Stop: cancel a training under way, let the running step end, close the registry.

        Return False if the running check did not end within ``timeout_s``.
        """
        self.pilot.cancel.cancel()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        ended = self._idle.wait(timeout_s)
        self.pilot.close()
        return ended

    def __enter__(self) -> AutopilotThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
