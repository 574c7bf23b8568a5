"""``alphaops quickstart``: the main job on the bundled real sample data."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from alphaops.cli._context import get_context
from alphaops.cli._dataset import render_dataset
from alphaops.services.quickstart import run_quickstart


def quickstart(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Run import → check → features → labels → dataset on the bundled sample data."""
    cli = get_context(ctx)
    with cli.err.status("starting", spinner="dots") as status:
        result = run_quickstart(cli.config, step=lambda text: status.update(text))
    if as_json:
        cli.print_json(
            {
                "home": str(cli.config.home),
                "imported": result.imported,
                "store": [e.to_dict() for e in result.entries],
                "checks": [r.to_dict() for r in result.checks],
                "dataset": {
                    "npz": str(result.files.npz),
                    "report": str(result.files.report),
                    "shape": list(result.dataset.shape),
                    "class_counts": result.dataset.class_counts(),
                },
            }
        )
        return
    console = cli.console
    console.rule(f"alphaops quickstart — home {cli.config.home}")
    table = Table("symbol", "tf", "candles", "first", "last", "added now", "gaps", "check")
    checks = {(r.symbol, str(r.timeframe)): r for r in result.checks}
    for e in result.entries:
        report = checks.get((e.symbol, str(e.timeframe)))
        verdict = "—" if report is None else ("[green]OK[/]" if report.ok else "[red]FAILED[/]")
        table.add_row(
            e.symbol,
            str(e.timeframe),
            f"{e.rows:,}",
            f"{e.first:%Y-%m-%d}",
            f"{e.last:%Y-%m-%d}",
            f"{result.imported.get(e.symbol, 0):,}",
            f"{e.gaps}",
            verdict,
        )
    console.print(table)
    spec = result.dataset.spec
    console.print(
        f"features: {len(spec.features.names)} ({', '.join(spec.features.names)}), "
        f"warm-up {spec.features.warmup_bars} bars"
    )
    render_dataset(console, result.dataset, result.files)
    console.print("next: `alphaops data list`, `alphaops dataset build --help`")
