"""``alphaops dataset``: build (N, T, F) sequence datasets from the store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from alphaops.cli._context import get_context

if TYPE_CHECKING:  # imported in the command: `alphaops -h` must not load pandas
    from alphaops.datasets import DatasetFiles, SequenceDataset

app = typer.Typer(help="Build training datasets.", no_args_is_help=True)


@app.command("build")
def build(
    ctx: typer.Context,
    symbols: Annotated[str, typer.Option(help="Comma-separated symbols, e.g. BTCUSDT,ETHUSDT.")],
    timeframe: Annotated[str, typer.Option(help="Candle timeframe.")] = "1h",
    lookback: Annotated[int, typer.Option(help="Bars per window (T).")] = 64,
    horizon: Annotated[int, typer.Option(help="Label horizon in bars.")] = 4,
    threshold: Annotated[
        float | None,
        typer.Option(
            help="Label threshold: a multiple of σ·√horizon with --label-scale volatility "
            "(default: the balanced one, e.g. 0.4307 for ternary); a fraction with "
            "--label-scale fixed (default 0.01 = 1%)."
        ),
    ] = None,
    label_scale: Annotated[
        str,
        typer.Option(
            help="volatility: the barrier follows each bar's recent volatility (classes "
            "balanced on any market); fixed: the same return on every bar."
        ),
    ] = "volatility",
    volatility_window: Annotated[
        int | None,
        typer.Option(help="One-bar returns behind σ (--label-scale volatility; default 100)."),
    ] = None,
    kind: Annotated[
        str, typer.Option(help="ternary (SELL/HOLD/BUY) or binary (LOSS/WIN).")
    ] = "ternary",
    price: Annotated[
        str, typer.Option(help="close (return at the horizon) or touch (high within it).")
    ] = "close",
    name: Annotated[str, typer.Option(help="File name prefix.")] = "dataset",
    plots: Annotated[
        bool,
        typer.Option(
            "--plots/--no-plots",
            help="Draw PNG plots beside the report (needs pip install 'alphaops[reports]').",
        ),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Write <home>/datasets/<name>_<timestamp>.npz and a Markdown report with plots beside it."""
    from alphaops.datasets import DatasetSpec
    from alphaops.features import LabelRule
    from alphaops.services.datasets import build_dataset

    cli = get_context(ctx)
    spec = DatasetSpec(
        symbols=tuple(s for s in symbols.split(",") if s.strip()),
        timeframe=timeframe,
        lookback=lookback,
        label=LabelRule.from_options(
            kind=kind,
            horizon=horizon,
            threshold=threshold,
            scale=label_scale,
            price=price,
            volatility_window=volatility_window,
        ),
        name=name,
    )
    with cli.err.status("computing features and labels, cutting windows …", spinner="dots"):
        dataset, files = build_dataset(cli.config, spec, plots=plots)
    summary = {
        "npz": str(files.npz),
        "report": str(files.report),
        "plots": {kind: str(path) for kind, path in files.plots.items()},
        "plots_skipped": files.plots_skipped,
        "shape": list(dataset.shape),
        "classes": list(spec.label.classes),
        "class_counts": dataset.class_counts(),
        "symbols": [s.to_dict() for s in dataset.stats],
    }
    if as_json:
        cli.print_json(summary)
        return
    render_dataset(cli.console, dataset, files)


def render_dataset(console: Console, dataset: SequenceDataset, files: DatasetFiles) -> None:
    """Print a dataset's shape, class balance per symbol and file paths."""
    classes = dataset.spec.label.classes
    n, t, f = dataset.shape
    label = dataset.spec.label.describe(dataset.spec.timeframe)
    console.print(f"[bold]dataset[/] {n:,} windows × {t} bars × {f} features; {label}")
    table = Table("symbol", "bars", "windows", *classes)
    for s in dataset.stats:
        shares = (f"{s.class_counts[c] / max(s.windows, 1):.1%}" for c in classes)
        table.add_row(s.symbol, f"{s.rows:,}", f"{s.windows:,}", *shares)
    console.print(table)
    # Paths print unwrapped and without markup so they can be copied whole.
    lines = [f"arrays: {files.npz}", f"report: {files.report}"]
    lines += [f"plot ({kind.replace('_', ' ')}): {path}" for kind, path in files.plots.items()]
    if files.plots_skipped:
        lines.append(f"plots: none ({files.plots_skipped})")
    console.print("\n".join(lines), markup=False, soft_wrap=True)
