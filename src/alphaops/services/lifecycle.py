"""Lifecycle replay use cases: what ``alphaops replay`` calls, and its text and HTML report."""

from __future__ import annotations

import html
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from alphaops.autopilot import AutopilotPolicy
from alphaops.autopilot.replay import Faults, LifecycleResult, ModelReplay, replay_lifecycle
from alphaops.core.config import AlphaOpsConfig

__all__ = ["SAMPLE_WINDOW", "lifecycle_lines", "run_replay", "sample_setup", "write_lifecycle_html"]


def run_replay(
    config: AlphaOpsConfig,
    policy: AutopilotPolicy,
    *,
    start: datetime,
    end: datetime,
    faults: Faults | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> LifecycleResult:
    """Replay ``[start, end)`` with the autopilot on (see :func:`replay_lifecycle`)."""
    return replay_lifecycle(
        config, policy, start=start, end=end, faults=faults, progress=progress, cancelled=cancelled
    )


SAMPLE_WINDOW = ("2024-10-15", "2025-07-01")
"""What ``alphaops replay --sample`` replays: the bundled year after the first 2,500 hours,
which the first champion trains and is gated on."""


SAMPLE_REASON = (
    "replay --sample: a demonstration on the bundled sample, whose short gate windows cannot "
    "show a significant edge after costs (profitability floors reported, not enforced)"
)


def sample_setup(config: AlphaOpsConfig) -> tuple[AutopilotPolicy, datetime, datetime]:
    """Import the bundled sample into the home (nothing twice) and return the bundled policy
    and replay window of ``alphaops replay --sample``."""
    from importlib import resources

    from alphaops.autopilot import load_policy
    from alphaops.data import sample_files
    from alphaops.services.data import import_files
    from alphaops.services.gates import apply_demo_policy

    for sample in sample_files():
        (outcome,) = import_files(
            config, [sample.path], symbol=sample.symbol, timeframe=str(sample.timeframe)
        )
        outcome.raise_for_error()
    apply_demo_policy(config, reason=SAMPLE_REASON)
    policy = load_policy(Path(str(resources.files("alphaops") / "sample_data" / "autopilot.yaml")))
    start, end = (datetime.fromisoformat(d).replace(tzinfo=UTC) for d in SAMPLE_WINDOW)
    return policy, start, end


def _pct(value: float) -> str:
    return f"{value:+.1%}"


def _row(name: str, curve: np.ndarray | None, trades: str) -> str:
    if curve is None:
        return f"  {name:<22}{'-':>9}{'-':>9}{trades:>9}"
    worst = float(ModelReplay.drawdown(curve).max())
    return f"  {name:<22}{_pct(float(curve[-1]) - 1):>9}{_pct(-worst):>9}{trades:>9}"


def lifecycle_lines(result: LifecycleResult) -> list[str]:
    """Return the replay's outcome as lines that fit 80 columns."""
    counts = result.counts
    parts = [
        f"{counts[k]} {label}"
        for k, label in (
            ("promoted", "first champion"),
            ("rollout_started", "rolled out"),
            ("blocked", "blocked by the gates"),
            ("safe_action", "safe actions"),
            ("failed", "failed"),
            ("cancelled", "cancelled"),
        )
        if counts.get(k)
    ]
    kinds = {k: sum(r.kind == k for r in result.runs) for k in ("scheduled", "emergency")}
    retrains = (
        f"retrains {result.retrains} ({kinds['scheduled']} scheduled, "
        f"{kinds['emergency']} emergency): " + (", ".join(parts) or "none")
    )
    lines = [
        f"Lifecycle replay {result.start:%Y-%m-%d} .. {result.end:%Y-%m-%d}: "
        f"{result.bars:,} bars in {result.seconds:.1f} s",
        *textwrap.wrap(retrains, 80, subsequent_indent="  ", break_long_words=False),
        f"promotions {result.promotions}, rollbacks {result.rollbacks}, "
        f"drift alarms {result.drift_alarms}",
    ]
    for m in result.models:
        lines += [
            "",
            f"{m.key}  (after fees and slippage, next-bar fills)",
            f"  {'':<22}{'return':>9}{'max DD':>9}{'trades':>9}",
            _row("autopilot", m.equity, str(m.trades)),
            _row("first champion only", m.first_champion, ""),
            _row("buy and hold", m.buy_and_hold, "1"),
        ]
        served = ", ".join(f"v{ref.rsplit('/', 1)[1]} {n}" for ref, n in m.served.items())
        lines.append(
            f"  bars served: {served}"
            if served
            else "  bars served: none (no version passed its gates, so nothing was served)"
        )
        if m.gap_bars:
            lines.append(f"  bars not served (data gap, warming up again): {m.gap_bars}")
    return lines


def _plots(result: LifecycleResult) -> dict[str, str] | None:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    from alphaops.gates.report import png_of

    plots = {}
    for m in result.models:
        when = m.timestamps_ms.astype("datetime64[ms]")
        fig = Figure(figsize=(9, 5.5))
        top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
        curves = {
            "autopilot": m.equity,
            "first champion only": m.first_champion,
            "buy and hold": m.buy_and_hold,
        }
        for label, curve in curves.items():
            if curve is None:
                continue
            top.plot(when, curve, label=label)
            bottom.plot(when, -ModelReplay.drawdown(curve), label=label)
        top.set_title(f"{m.key}: equity of 1.0 (after costs)")
        top.legend(fontsize=8)
        bottom.set_title("drawdown")
        fig.autofmt_xdate()
        plots[f"{m.key} equity and drawdown"] = png_of(fig)
    return plots


def write_lifecycle_html(path: Path, result: LifecycleResult, runs: list[str]) -> Path:
    """Write a self-contained HTML report (text, plots, the autopilot's runs) to ``path``."""
    plots = _plots(result)
    images = (
        "<p>No plots: matplotlib is not installed (<code>pip install 'alphaops[reports]'</code>"
        ").</p>"
        if plots is None
        else "".join(
            f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' "
            f"src='data:image/png;base64,{data}'/>"
            for title, data in plots.items()
        )
    )
    text = html.escape("\n".join(lifecycle_lines(result)))
    log = html.escape("\n".join(runs))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>Lifecycle replay</title>"
        f"</head><body><pre>{text}</pre>{images}<h2>Autopilot runs</h2><pre>{log}</pre>"
        "</body></html>\n"
    )
    return path
