"""PNG plots for the dataset report: class balance, feature distributions, time coverage.

matplotlib is in the ``reports`` extra and is imported only inside :func:`draw_plots`, so
importing :mod:`alphaops.datasets` (a live bot does, through :mod:`alphaops.scoring`) never
loads it. Figures are drawn on an explicit Agg canvas without pyplot, so drawing never
switches the backend of a notebook or GUI in the same process.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from alphaops.core.errors import UsageError
from alphaops.core.timeframes import Timeframe

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from alphaops.datasets.build import SequenceDataset

__all__ = ["PLOTS_INSTALL", "PLOT_TITLES", "draw_plots"]

PLOTS_INSTALL = "pip install 'alphaops[reports]'"

#: Plot kinds in drawing order, with the alt text the Markdown report gives them.
PLOT_TITLES = {
    "class_balance": "Class balance per symbol",
    "coverage": "Share of bars that end a window, over time",
    "features": "Feature distributions at the last bar of each window",
}

_CLASS_COLOURS = {
    "SELL": "#d62728",
    "LOSS": "#d62728",
    "HOLD": "#9a9a9a",
    "BUY": "#2ca02c",
    "WIN": "#2ca02c",
}
_COLUMNS = 4  # feature small multiples per row
_COVERAGE_BINS = 120
_MINUTE, _HOUR, _DAY = 60_000, 3_600_000, 86_400_000
_ROUND_WIDTHS_MS = (
    *(m * _MINUTE for m in (1, 5, 15, 30)),
    *(h * _HOUR for h in (1, 4, 12)),
    *(d * _DAY for d in (1, 7, 14, 30, 91, 365)),
)
_DPI = 80


def draw_plots(dataset: SequenceDataset, folder: Path, stem: str) -> dict[str, Path]:
    """Write ``<folder>/<stem>_<kind>.png`` for each kind of :data:`PLOT_TITLES`.

    Return the paths by kind. Raise :class:`UsageError` when matplotlib is not installed
    (``pip install 'alphaops[reports]'``), before anything is written.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise UsageError(
            "drawing dataset plots needs matplotlib, which is not installed", fix=PLOTS_INSTALL
        ) from exc

    drawers = {
        "class_balance": _class_balance,
        "coverage": _coverage,
        "features": _features,
    }
    paths: dict[str, Path] = {}
    for kind, draw in drawers.items():
        fig = Figure()
        FigureCanvasAgg(fig)
        draw(fig, dataset)
        path = folder / f"{stem}_{kind}.png"
        fig.savefig(path, format="png", dpi=_DPI, bbox_inches="tight")
        paths[kind] = path
    return paths


def _class_balance(fig: Figure, dataset: SequenceDataset) -> None:
    # One 100% stacked bar per symbol (and one for all symbols), classes in label-rule order.
    classes = dataset.spec.label.classes
    rows = [(s.symbol, s.windows, [s.class_counts[c] for c in classes]) for s in dataset.stats]
    if len(rows) > 1:
        totals = dataset.class_counts()
        rows.append(("all", len(dataset.labels), [totals[c] for c in classes]))
    fig.set_size_inches(8, 0.6 * len(rows) + 1.4)
    ax = fig.add_subplot()
    y = np.arange(len(rows))[::-1]
    left = np.zeros(len(rows))
    for k, cls in enumerate(classes):
        shares = np.array([counts[k] / max(n, 1) for _, n, counts in rows])
        colour = _CLASS_COLOURS.get(cls, f"C{k}")
        ax.barh(y, shares, left=left, color=colour, edgecolor="white", label=cls)
        for yi, x0, share in zip(y, left, shares, strict=True):
            if share >= 0.06:
                ax.text(x0 + share / 2, yi, f"{share:.0%}", ha="center", va="center", fontsize=9)
        left += shares
    ax.set_yticks(y, [f"{symbol}\n{n:,} windows" for symbol, n, _ in rows])
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(_percent)
    ax.set_title(f"Class balance per symbol: {dataset.spec.label.describe(dataset.spec.timeframe)}")
    ax.title.set_fontsize(9)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)


def _features(fig: Figure, dataset: SequenceDataset) -> None:
    # Small multiples: one histogram per feature of the values at each window's last bar, one
    # outline per symbol (densities, so symbols with more windows do not dominate).
    names = dataset.spec.features.names
    last = dataset.windows.features[dataset.windows.ends].astype(np.float64)
    rows = math.ceil(len(names) / _COLUMNS)
    columns = min(len(names), _COLUMNS)
    fig.set_size_inches(3.2 * columns, 2.3 * rows + 0.6)
    symbols = dataset.spec.symbols
    for j, name in enumerate(names):
        ax = fig.add_subplot(rows, columns, j + 1)
        lo, hi = _value_range(last[:, j])
        for index, symbol in enumerate(symbols):
            values = last[dataset.symbol_index == index, j]
            if values.size == 0:
                continue
            kind: Literal["step", "stepfilled"] = "stepfilled" if len(symbols) == 1 else "step"
            ax.hist(values, bins=40, range=(lo, hi), density=True, histtype=kind, label=symbol)
        ax.set_title(name, fontsize=9)
        ax.locator_params(axis="x", nbins=4)
        ax.tick_params(labelsize=7)
        ax.set_yticks([])
    handles, labels = fig.axes[0].get_legend_handles_labels()
    if len(symbols) > 1:
        fig.legend(handles, labels, loc="upper right", ncols=len(symbols), frameon=False)
    fig.suptitle(
        "Feature values at the last bar of each window (density; x axis from the 0.5th to "
        "the 99.5th percentile, min and max are in the table)",
        fontsize=9,
        x=0.01,
        ha="left",
    )
    fig.tight_layout(rect=(0, 0, 1, 0.95))


def _value_range(values: npt.NDArray[np.float64]) -> tuple[float, float]:
    # Fat tails (returns, volume z-scores) would squash a min..max histogram into one bar.
    lo, hi = (float(v) for v in np.percentile(values, [0.5, 99.5]))
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


def _coverage(fig: Figure, dataset: SequenceDataset) -> None:
    # One strip per symbol (symbols often share their gaps, so one axis would hide lines): per
    # time bin, windows ending in it / bars of the symbol's history in it. 100% means every
    # bar ends a window; dips are data gaps, feature warm-up and bars without a label.
    step = Timeframe.parse(dataset.spec.timeframe).milliseconds
    firsts = [_iso_ms(s.first) for s in dataset.stats]
    lasts = [_iso_ms(s.last) + step for s in dataset.stats]
    start, stop = min(firsts), max(lasts)
    width = _bin_width(stop - start, step)
    edges = np.arange(start, stop + width, width, dtype=np.int64)
    when = edges.astype("datetime64[ms]")
    symbols = dataset.spec.symbols
    fig.set_size_inches(8, 1.1 * len(symbols) + 1.0)
    axes = fig.subplots(len(symbols), 1, sharex=True, squeeze=False)[:, 0]
    for index, (ax, symbol) in enumerate(zip(axes, symbols, strict=True)):
        ends = dataset.end_timestamps_ms[dataset.symbol_index == index]
        counts, _ = np.histogram(ends, bins=edges)
        held = np.clip(
            np.minimum(edges[1:], lasts[index]) - np.maximum(edges[:-1], firsts[index]), 0, None
        )
        bars = held / step
        share = np.divide(counts, bars, out=np.full(counts.shape, np.nan), where=bars >= 1)
        steps = np.append(share, share[-1])
        ax.fill_between(when, steps, step="post", color=f"C{index}", alpha=0.6, linewidth=0)
        ax.plot(when, steps, drawstyle="steps-post", color=f"C{index}", linewidth=0.8)
        ax.set_ylim(0, 1.05)
        ax.set_yticks([0, 0.5, 1])
        ax.yaxis.set_major_formatter(_percent)
        ax.tick_params(labelsize=7)
        ax.set_ylabel(symbol, rotation=0, ha="right", va="center", fontsize=8)
    axes[0].set_title(
        f"Share of bars that end a window, per {_duration(width)} "
        "(dips: data gaps, feature warm-up, bars without a label)",
        fontsize=9,
    )
    fig.autofmt_xdate()


def _bin_width(span_ms: int, step_ms: int) -> int:
    # A round bin (hour, day, week, month …) that cuts the span into at most ~120 bins.
    wanted = span_ms / _COVERAGE_BINS
    for width in _ROUND_WIDTHS_MS:
        if width >= step_ms and width % step_ms == 0 and width >= wanted:
            return width
    return max(1, math.ceil(wanted / step_ms)) * step_ms


def _percent(value: float, _position: float) -> str:
    return f"{value:.0%}"


def _iso_ms(text: str) -> int:
    return int(pd.Timestamp(text).value // 1_000_000)


def _duration(ms: int) -> str:
    for unit, size in (("day", _DAY), ("hour", _HOUR), ("minute", _MINUTE)):
        if ms % size == 0:
            count = ms // size
            return unit if count == 1 else f"{count} {unit}s"
    return f"{ms / 1000:g} seconds"
