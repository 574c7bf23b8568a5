"""Reports people read: a Markdown summary and an HTML page with plots for one gate run.

The HTML embeds PNGs (matplotlib, headless Agg backend) as base64: confidence histograms per
predicted class, the action distribution, equity curves of candidate vs champion vs
buy-and-hold, and their drawdowns. matplotlib is in the ``reports`` extra.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from alphaops.gates.records import GateRecord
from alphaops.gates.runner import GateRun
from alphaops.scoring import ACTIONS, Scores

__all__ = ["png_of", "render_html", "render_markdown", "report_name", "write_reports"]

_BACKTEST_ROWS = (
    ("total_return", "net return (after costs)", "{:.2%}"),
    ("gross_return", "gross return (before costs)", "{:.2%}"),
    ("cost_paid", "costs paid", "{:.2%}"),
    ("sharpe", "Sharpe (ann.)", "{:.2f}"),
    ("sortino", "Sortino (ann.)", "{:.2f}"),
    ("max_drawdown", "max drawdown", "{:.2%}"),
    ("turnover", "turnover / bar", "{:.3f}"),
    ("units_traded", "units traded", "{:.0f}"),
    ("exposure", "exposure", "{:.1%}"),
    ("hit_rate", "hit rate", "{:.1%}"),
    ("trades", "trades", "{:.0f}"),
    ("psr", "PSR(0)", "{:.3f}"),
    ("dsr", "DSR", "{:.3f}"),
)

_DEFLATION_ROWS = (
    ("sharpe", "Sharpe (ann.)", "{:.3f}"),
    ("sharpe_per_bar", "Sharpe per bar", "{:.4f}"),
    ("trials", "trials N (candidates of this model)", "{:.0f}"),
    ("sr0", "SR0 (ann.): best Sharpe expected of N unskilled trials", "{:.3f}"),
    ("sr0_per_bar", "SR0 per bar", "{:.4f}"),
    ("bars", "bars n", "{:.0f}"),
    ("skew", "skew", "{:.3f}"),
    ("kurtosis", "kurtosis (3 = normal)", "{:.3f}"),
    ("psr", "PSR(0) = P(true Sharpe > 0)", "{:.3f}"),
    ("dsr", "DSR = P(true Sharpe > SR0)", "{:.3f}"),
)


def report_name(record: GateRecord, suffix: str) -> str:
    """Return ``quality_gate_<UTC timestamp to the millisecond>.<suffix>`` for a record."""
    stamp = record.run_at.strftime("%Y%m%dT%H%M%S") + f"{record.run_at.microsecond // 1000:03d}Z"
    return f"quality_gate_{stamp}.{suffix}"


def _fmt(value: Any, pattern: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return pattern.format(value)


def render_markdown(run: GateRun) -> str:
    """Return the Markdown report of a gate run."""
    r = run.record
    verdict = "PASS" if r.passed else "FAIL"
    lines = [
        f"# Gate report: {r.ref} — {verdict}",
        "",
        f"- window: {r.window_start.isoformat()} → {r.window_end.isoformat()} "
        f"({len(run.candidate)} bars)",
        f"- champion: {r.champion or 'none (absolute thresholds only)'}",
        f"- policy hash: `{r.policy_hash[:16]}`",
        f"- run at: {r.run_at.isoformat()} by alphaops {r.code_version}",
        "",
    ]
    for gate in r.gates:
        lines += [
            f"## {gate.gate}: {'PASS' if gate.passed else 'FAIL'}",
            "",
            gate.summary,
            "",
            "| check | value | threshold | verdict | explanation |",
            "|---|---|---|---|---|",
        ]
        for c in gate.checks:
            threshold = "" if c.threshold is None else f"{c.comparison} {c.threshold:.4g}"
            value = "n/a" if c.value is None else f"{c.value:.4g}"
            lines.append(f"| {c.name} | {value} | {threshold} | {c.verdict} | {c.explanation} |")
        lines.append("")
    lines += ["## Backtest side by side", "", "| metric | " + " | ".join(run.backtests) + " |"]
    lines.append("|---|" + "---|" * len(run.backtests))
    for key, label, pattern in _BACKTEST_ROWS:
        cells = [_fmt(bt.metrics.get(key), pattern) for bt in run.backtests.values()]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    candidate = run.backtests.get("candidate")
    if candidate is not None:
        lines += [
            "## Sharpe deflation (candidate)",
            "",
            "PSR asks whether the Sharpe is above 0 given the bars, skew and fat tails; DSR "
            "asks whether it is above SR0, the Sharpe the luckiest of N skill-less candidates "
            "would show on these bars (Bailey and López de Prado, 2014).",
            "",
            "| figure | value |",
            "|---|---|",
        ]
        for key, label, pattern in _DEFLATION_ROWS:
            lines.append(f"| {label} | {_fmt(candidate.metrics.get(key), pattern)} |")
        lines.append("")
    return "\n".join(lines)


def png_of(fig: Any) -> str:
    """Return a matplotlib figure as a base64 PNG (for self-contained HTML pages)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _plots(run: GateRun) -> dict[str, str] | None:
    """Return the plots as base64 PNGs by title (``None`` without matplotlib). Figures are
    drawn on matplotlib's Agg canvas without pyplot: no global backend switch, so a notebook
    that runs gates keeps its own backend."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None

    plots: dict[str, str] = {}
    models: dict[str, Scores] = {"candidate": run.candidate}
    if run.champion is not None:
        models["champion"] = run.champion

    fig = Figure(figsize=(4 * len(models), 3))
    for i, (name, scores) in enumerate(models.items()):
        ax = fig.add_subplot(1, len(models), i + 1)
        for k, cls in enumerate(scores.classes):
            chosen = scores.confidence[scores.predicted == k]
            if chosen.size:
                ax.hist(chosen, bins=30, range=(0, 1), alpha=0.5, label=cls)
        ax.set_title(f"{name}: confidence by predicted class")
        ax.legend()
    plots["Confidence histograms per class"] = png_of(fig)

    fig = Figure(figsize=(5, 3))
    ax = fig.add_subplot()
    width = 0.8 / len(models)
    for i, (name, scores) in enumerate(models.items()):
        shares = [float(np.mean(scores.actions == a)) if len(scores) else 0.0 for a in (-1, 0, 1)]
        ax.bar(np.arange(3) + i * width, shares, width=width, label=name)
    ax.set_xticks(np.arange(3) + width * (len(models) - 1) / 2, ACTIONS)
    ax.set_title("Action distribution")
    ax.legend()
    plots["Action distribution"] = png_of(fig)

    fig = Figure(figsize=(8, 5))
    top, bottom = fig.add_subplot(2, 1, 1), fig.add_subplot(2, 1, 2)
    for name, bt in run.backtests.items():
        when = bt.timestamps_ms.astype("datetime64[ms]")
        top.plot(when, bt.equity, label=name)
        bottom.plot(when, -bt.drawdown, label=name)
    top.set_title("Equity (after costs)")
    bottom.set_title("Drawdown")
    top.legend()
    fig.autofmt_xdate()
    plots["Equity curves and drawdown"] = png_of(fig)
    return plots


def render_html(run: GateRun, markdown: str | None = None) -> str:
    """Return a self-contained HTML page: the Markdown report as text, then the plots."""
    body = html.escape(markdown or render_markdown(run))
    plots = _plots(run)
    images = (
        "<p>No plots: matplotlib is not installed "
        "(<code>pip install 'alphaops[reports]'</code> adds them).</p>"
        if plots is None
        else "".join(
            f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' "
            f"src='data:image/png;base64,{data}'/>"
            for title, data in plots.items()
        )
    )
    title = html.escape(f"Gate report {run.record.ref}")
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
        f"<body><pre>{body}</pre>{images}</body></html>\n"
    )


def write_reports(run: GateRun, folder: Path) -> dict[str, Path]:
    """Write the Markdown and HTML reports into ``folder``; return them by suffix."""
    folder.mkdir(parents=True, exist_ok=True)
    markdown = render_markdown(run)
    paths = {
        "md": folder / report_name(run.record, "md"),
        "html": folder / report_name(run.record, "html"),
    }
    paths["md"].write_text(markdown, encoding="utf-8")
    paths["html"].write_text(render_html(run, markdown), encoding="utf-8")
    return paths
