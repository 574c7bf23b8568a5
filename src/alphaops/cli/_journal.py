"""``alphaops journal …``, ``alphaops monitor`` and ``alphaops alarm …``: what models did
live, whether it matches their backtest, drift, and the alarms that block promotion."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from alphaops.cli._context import CliContext, get_context
from alphaops.core.errors import DriftAlarmError

if TYPE_CHECKING:  # imported in the commands: `alphaops -h` must not load pandas or scipy
    from alphaops.journal.importers import ImportReport
    from alphaops.registry import Alarm

__all__ = ["alarm_app", "app", "monitor"]

app = typer.Typer(help="The journal of live decisions and trades, per model version.")
alarm_app = typer.Typer(help="Drift alarms: list them, acknowledge them.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
HtmlOpt = Annotated[
    Path | None, typer.Option("--html", help="Also write an HTML report with plots here.")
]


def _print(cli: CliContext, lines: list[str]) -> None:
    for line in lines:
        cli.console.print(line, highlight=False, markup=False, soft_wrap=True)


@app.command("stats")
def stats(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="SYMBOL/TYPE, or one version SYMBOL/TYPE/N")],
    since: Annotated[str | None, typer.Option(help="From this time (ISO, UTC).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this time (ISO, UTC).")] = None,
    last: Annotated[int | None, typer.Option(help="Only the last N trades.")] = None,
    as_json: JsonOpt = False,
    html: HtmlOpt = None,
) -> None:
    """Live performance per version and role, beside what the backtest gate measured."""
    from alphaops.services import journal as svc
    from alphaops.services.data import parse_utc
    from alphaops.services.journal_report import performance_lines, write_html

    cli = get_context(ctx)
    report = svc.live_performance(
        cli.config,
        ref,
        since=None if since is None else int(parse_utc(since, "--since").value // 1_000_000),
        until=None if until is None else int(parse_utc(until, "--until").value // 1_000_000),
        last=last,
    )
    if html is not None:
        write_html(html, report)
    if as_json:
        cli.print_json(report.to_dict())
        return
    _print(cli, performance_lines(report))
    if html is not None:
        cli.console.print(f"\nreport: {html}", highlight=False)


def _imported(cli: CliContext, report: ImportReport, as_json: bool) -> None:
    if as_json:
        cli.print_json(report.to_dict())
        return
    lines = [report.summary()]
    lines += [f"  skipped {s.what}: {s.reason}" for s in report.skipped]
    _print(cli, lines)


DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Check and match, write nothing, say what would be.")
]


@app.command("import-fills")
def import_fills(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="CSV with time, side, qty, price (+ optional)")],
    book: Annotated[str, typer.Option(help="The account the fills belong to.")] = "default",
    symbol: Annotated[str | None, typer.Option(help="Symbol of rows without one.")] = None,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Import a CSV of fills (checked whole before anything is written; re-running is safe)."""
    from alphaops.journal import Journal
    from alphaops.journal.importers import import_fills_csv
    from alphaops.services._common import open_configured_registry

    cli = get_context(ctx)
    with (
        open_configured_registry(cli.config, create=False) as registry,
        Journal(registry) as journal,
    ):
        report = import_fills_csv(journal, path, book=book, symbol=symbol, dry_run=dry_run)
    _imported(cli, report, as_json)


@app.command("import-freqtrade")
def import_ft(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="freqtrade's tradesv3.sqlite (opened read-only)")],
    model: Annotated[
        str | None, typer.Option(help="Only match decisions of this SYMBOL/TYPE.")
    ] = None,
    book: Annotated[str, typer.Option(help="The account the fills belong to.")] = "freqtrade",
    tolerance_bars: Annotated[
        int, typer.Option(help="How many bars after a decision an entry may be placed.")
    ] = 1,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Import freqtrade's trades and orders, matched to journaled decisions by tag or time."""
    from alphaops.journal import Journal
    from alphaops.journal.importers import import_freqtrade
    from alphaops.services._common import open_configured_registry

    cli = get_context(ctx)
    with (
        open_configured_registry(cli.config, create=False) as registry,
        Journal(registry) as journal,
    ):
        report = import_freqtrade(
            journal, path, book=book, key=model, tolerance_bars=tolerance_bars, dry_run=dry_run
        )
    _imported(cli, report, as_json)


def monitor(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="SYMBOL/TYPE (its champion) or SYMBOL/TYPE/N")],
    window: Annotated[int, typer.Option(help="The last N decisions are compared.")] = 1000,
    record: Annotated[
        bool,
        typer.Option(
            "--record",
            help="Journal a warning or alarm; an alarm pauses the rollout and blocks promotion.",
        ),
    ] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 2 when the status is alarm (for cron and CI).")
    ] = False,
    as_json: JsonOpt = False,
    html: HtmlOpt = None,
) -> None:
    """Drift of a version's inputs, predictions and trade outcomes, and live vs backtest."""
    from alphaops.services import journal as svc
    from alphaops.services.journal_report import monitor_lines, write_html

    cli = get_context(ctx)
    report = svc.monitor_model(cli.config, ref, window=window, record=record)
    if html is not None:
        perf = svc.PerformanceReport(report.ref, "", report.performance)
        write_html(html, perf, report)
    if as_json:
        cli.print_json(report.to_dict())
    else:
        _print(cli, monitor_lines(report))
        if html is not None:
            cli.console.print(f"\nreport: {html}", highlight=False)
    if check and report.worst == "alarm":
        raise DriftAlarmError(
            f"{report.ref} drifted ({report.worst})",
            fix="look at the drift table; retrain or acknowledge: alphaops alarm ack …",
        )


def _alarm_dict(a: Alarm) -> dict[str, object]:
    return {
        "id": a.id,
        "at": a.at.isoformat(),
        "model": str(a.key),
        "version": a.version,
        "kind": a.kind,
        "summary": a.summary,
        "paused_rollout": a.rollout_id,
        "open": a.open,
        "acknowledged_by": a.acknowledged_by,
        "acknowledgement": a.acknowledgement,
    }


def _alarm_lines(alarms: list[Alarm]) -> list[str]:
    lines = []
    for a in alarms:
        state = "OPEN" if a.open else f"acknowledged by {a.acknowledged_by}"
        lines.append(f"#{a.id} {a.at:%Y-%m-%d %H:%M}Z {state}")
        lines.append(f"  {a.summary}")
        if not a.open:
            lines.append(f"  why: {a.acknowledgement}")
    return lines


@alarm_app.command("list")
def alarm_list(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="SYMBOL/TYPE")],
    open_only: Annotated[bool, typer.Option("--open", help="Only unacknowledged.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List the drift alarms of a model."""
    from alphaops.services._common import open_configured_registry

    cli = get_context(ctx)
    with open_configured_registry(cli.config, create=False) as registry:
        alarms = registry.alarms(model, open_only=open_only)
    if as_json:
        cli.print_json([_alarm_dict(a) for a in alarms])
    elif not alarms:
        cli.console.print(f"no {'open ' if open_only else ''}alarm for {model}")
    else:
        _print(cli, _alarm_lines(alarms))


@alarm_app.command("ack")
def alarm_ack(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="SYMBOL/TYPE")],
    reason: Annotated[str, typer.Option(help="Why it is safe to go on (audited).")],
    as_json: JsonOpt = False,
) -> None:
    """Acknowledge every open alarm of a model: promotion is allowed again (audited)."""
    from alphaops.services._common import open_configured_registry

    cli = get_context(ctx)
    with open_configured_registry(cli.config, create=False) as registry:
        alarms = registry.acknowledge_alarms(model, reason=reason)
    if as_json:
        cli.print_json([_alarm_dict(a) for a in alarms])
    else:
        _print(cli, [f"acknowledged {len(alarms)} alarm(s) of {model}", *_alarm_lines(alarms)])
