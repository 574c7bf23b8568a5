"""What people read of the journal: text that fits 80 columns, and an HTML page with plots.

The HTML embeds PNGs (matplotlib Agg, no pyplot) as base64: the paper equity of every version
and role beside the line its backtest promised (the gate's mean bar return compounded), and
the PSI of every feature against the warn and alarm thresholds.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import numpy as np

from alphaops.gates.report import png_of
from alphaops.monitoring.drift import DriftReport
from alphaops.services.journal import MonitorReport, PerformanceReport, VersionPerformance

__all__ = ["monitor_lines", "performance_lines", "write_html"]


def _pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:+.{digits}%}"


def _num(value: float | None, pattern: str = "{:.2f}") -> str:
    return "n/a" if value is None or not math.isfinite(value) else pattern.format(value)


def _version_lines(row: VersionPerformance) -> list[str]:
    d, t = row.decisions, row.trades
    acts = ", ".join(f"{k} {v}" for k, v in d.actions.items() if v)
    lines = [
        f"{row.ref} · {row.role} · {d.decisions} decisions ({acts})",
        f"  hit rate {_num(d.hit_rate, '{:.1%}')} of {d.scored} scored · paper "
        f"{_pct(d.total_return)} over {d.bars} bars",
        f"  Sharpe {_num(d.sharpe)} · max drawdown {_num(d.max_drawdown, '{:.1%}')}",
    ]
    if row.divergence is not None:
        v = row.divergence
        lines.append(
            f"  vs backtest: Sharpe {_num(v.backtest_sharpe)} over {v.backtest_bars} bars · "
            f"z {_num(v.z)} → {v.verdict}"
        )
    else:
        lines.append("  vs backtest: never gated")
    if t.trades:
        lines.append(
            f"  trades {t.trades} · win rate {_num(t.win_rate, '{:.0%}')} · expectancy "
            f"{_num(t.expectancy, '{:.2f}')}"
        )
        lines.append(
            f"  profit factor {_num(t.profit_factor)} · fees {t.fees:.2f} · net PnL {t.net_pnl:.2f}"
        )
    else:
        lines.append("  trades: none closed")
    return lines


def performance_lines(report: PerformanceReport) -> list[str]:
    """Return the performance report as lines of at most ~78 characters."""
    lines = [f"Live performance of {report.key} ({report.timeframe} bars)"]
    for row in report.rows:
        lines.append("")
        lines.extend(_version_lines(row))
    if report.unscored:
        lines += ["", f"{report.unscored} decisions had no stored bar to score against"]
    return lines


def _drift_lines(title: str, drift: DriftReport) -> list[str]:
    lines = [f"{title}: {drift.worst}", f"  {'name':<22} {'PSI':>7} {'KS':>6} {'W1':>9}  status"]
    for r in drift.rows:
        lines.append(
            f"  {r.name[:22]:<22} {_num(r.psi, '{:.3f}'):>7} {_num(r.ks, '{:.3f}'):>6} "
            f"{_num(r.wasserstein, '{:.3g}'):>9}  {r.status}"
        )
    return lines


def monitor_lines(report: MonitorReport) -> list[str]:
    """Return the drift table and the live-vs-backtest figures as short lines."""
    lines = [
        f"Monitor {report.ref}: {report.worst.upper()}",
        f"  inputs of the last {report.bars} bars (from the {report.source}), "
        f"{report.decisions} own decisions",
        "",
    ]
    lines += _drift_lines("Feature drift", report.features)
    lines += ["", *_drift_lines("Prediction drift", report.predictions), ""]
    outcome = "DRIFT" if report.outcome_drift else "stable"
    lines.append(
        f"Outcomes: {report.trades} trades, win rate {_num(report.win_rate, '{:.0%}')}, {outcome}"
    )
    for row in report.performance:
        lines.append("")
        lines.extend(_version_lines(row))
    if report.alarm is not None:
        lines += [
            "",
            f"ALARM #{report.alarm.id}: promotion of {report.alarm.key} is blocked and its "
            "rollout paused",
            f"  until: alphaops alarm ack {report.alarm.key} --reason '…'",
        ]
    return lines


def _plots(performance: PerformanceReport, drift: MonitorReport | None) -> dict[str, str] | None:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    plots: dict[str, str] = {}
    fig = Figure(figsize=(9, 4))
    ax = fig.add_subplot()
    for row in performance.rows:
        if not row.equity:
            continue
        when = np.array(row.equity_ms, dtype="datetime64[ms]")
        line = ax.plot(when, row.equity, label=f"v{row.version} {row.role} (live)")[0]
        v = row.divergence
        if v is not None and math.isfinite(v.backtest_mean_return):
            promised = (1.0 + v.backtest_mean_return) ** np.arange(1, len(row.equity) + 1)
            ax.plot(when, promised, "--", color=line.get_color(), label=f"v{row.version} backtest")
    ax.set_title("Paper equity of live decisions vs what the backtest promised (after costs)")
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    plots["Live vs backtest equity"] = png_of(fig)
    if drift is not None and drift.features.rows:
        fig = Figure(figsize=(9, 3.5))
        ax = fig.add_subplot()
        names = [r.name for r in drift.features.rows]
        values = [r.psi if math.isfinite(r.psi) else 0.0 for r in drift.features.rows]
        colors = [
            {"alarm": "tab:red", "warn": "tab:orange"}.get(r.status, "tab:blue")
            for r in drift.features.rows
        ]
        ax.bar(names, values, color=colors)
        t = drift.features.thresholds
        ax.axhline(t.psi_warn, color="tab:orange", linestyle="--", label="warn")
        ax.axhline(t.psi_alarm, color="tab:red", linestyle="--", label="alarm")
        ax.set_title(f"PSI per feature, {drift.ref}")
        ax.tick_params(axis="x", rotation=45)
        ax.legend()
        plots["Feature drift (PSI)"] = png_of(fig)
    return plots


def write_html(
    path: Path, performance: PerformanceReport, drift: MonitorReport | None = None
) -> Path:
    """Write a self-contained HTML report (text, then plots) to ``path``; return it."""
    lines = performance_lines(performance) if drift is None else monitor_lines(drift)
    plots = _plots(performance, drift)
    images: Any = (
        "<p>No plots: matplotlib is not installed (<code>pip install 'alphaops[reports]'</code>"
        ").</p>"
        if plots is None
        else "".join(
            f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' "
            f"src='data:image/png;base64,{data}'/>"
            for title, data in plots.items()
        )
    )
    title = html.escape(f"Live performance {performance.key}")
    text = html.escape("\n".join(lines))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
        f"<body><pre>{text}</pre>{images}</body></html>\n"
    )
    return path
