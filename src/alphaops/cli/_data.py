"""``alphaops data``: import, list, check, show and download candles."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress
from rich.table import Column, Table

from alphaops.cli._context import get_context

if TYPE_CHECKING:  # imported in the commands: `alphaops -h` must not load pandas
    from alphaops.data import DownloadProgress

app = typer.Typer(
    help="Market data: import, list, check, show and download candles.", no_args_is_help=True
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
CalendarOption = Annotated[
    str | None,
    typer.Option(
        help="Session calendar: 24/7 (crypto, default), fx, or an exchange code such as XNYS."
    ),
]


@app.command("import")
def import_(
    ctx: typer.Context,
    paths: Annotated[
        list[Path], typer.Argument(help="Parquet, CSV or freqtrade feather/JSON files.")
    ],
    symbol: Annotated[
        str | None, typer.Option(help="Symbol, if the file name does not say.")
    ] = None,
    timeframe: Annotated[
        str | None, typer.Option(help="Timeframe, if the file name does not say.")
    ] = None,
    replace: Annotated[
        bool, typer.Option(help="New candles win over stored ones that differ.")
    ] = False,
    assume_utc: Annotated[bool, typer.Option(help="Read timezone-less times as UTC.")] = False,
    calendar: CalendarOption = None,
    as_json: JsonOption = False,
) -> None:
    """Validate candle files and append them to the store without duplicates."""
    from alphaops.services import data as service

    cli = get_context(ctx)
    outcomes = service.import_files(
        cli.config,
        paths,
        symbol=symbol,
        timeframe=timeframe,
        on_conflict="replace" if replace else "raise",
        assume_utc=assume_utc,
        calendar=calendar,
    )
    if len(outcomes) == 1:  # one file: its error is the command's error
        outcomes[0].raise_for_error()
    done = [(o.path, *o.raise_for_error()) for o in outcomes if o.ok]
    failed = [o for o in outcomes if not o.ok]
    rows: list[dict[str, object]] = [
        {
            "path": str(path),
            "symbol": candles.symbol,
            "timeframe": str(candles.timeframe),
            "read": len(candles),
            "added": result.added,
            "already_present": result.already_present,
            "replaced": result.replaced,
            "stored_rows": result.rows,
            "gaps": candles.gaps.to_dict(),
        }
        for path, candles, result in done
    ]
    refused = [
        {"path": str(o.path), "error": o.error.to_dict()} for o in failed if o.error is not None
    ]
    if as_json:
        cli.print_json(rows + refused)
    else:
        if rows and not cli.console.is_terminal:  # piped: plain lines, nothing cut or wrapped
            for r in rows:
                gaps = r["gaps"]
                cli.console.print(
                    f"{r['path']}: {r['symbol']} {r['timeframe']}, read {r['read']}, added "
                    f"{r['added']}, already stored {r['already_present']}, gaps "
                    f"{gaps['count']} ({gaps['missing_bars']} missing bars)",  # type: ignore[index]
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )
        elif rows:
            table = Table(
                Column("file", overflow="fold"),  # a file name is folded, never cut
                "symbol", "tf", "read", "added", "already stored", "gaps (missing bars)",
            )  # fmt: skip
            for r in rows:
                gaps = r["gaps"]
                table.add_row(
                    Path(str(r["path"])).name,
                    str(r["symbol"]),
                    str(r["timeframe"]),
                    f"{r['read']:,}",
                    f"{r['added']:,}",
                    f"{r['already_present']:,}",
                    f"{gaps['count']} ({gaps['missing_bars']})",  # type: ignore[index]
                )
            cli.console.print(table)
        for o in failed:
            assert o.error is not None
            cli.err.print(
                f"not imported: {o.path} ({o.error.code}): {o.error}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
    if failed:  # every outcome is reported above; the exit code says some file failed
        assert failed[0].error is not None
        raise typer.Exit(failed[0].error.exit_code)


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List the stored series with their extent, gaps and size."""
    from alphaops.services import data as service

    cli = get_context(ctx)
    entries = service.list_data(cli.config)
    if as_json:
        cli.print_json([e.to_dict() for e in entries])
        return
    if not entries:
        cli.console.print(
            "The store is empty: run `alphaops data import FILE` or `alphaops quickstart`."
        )
        return
    table = Table("symbol", "tf", "rows", "first", "last", "gaps", "missing bars", "MB")
    for e in entries:
        table.add_row(
            e.symbol,
            str(e.timeframe),
            f"{e.rows:,}",
            f"{e.first:%Y-%m-%d %H:%M}",
            f"{e.last:%Y-%m-%d %H:%M}",
            str(e.gaps),
            str(e.missing_bars),
            f"{e.bytes / 1e6:.2f}",
        )
    cli.console.print(table)


@app.command("check")
def check(
    ctx: typer.Context,
    symbol: Annotated[str, typer.Argument(help="Symbol, e.g. BTCUSDT.")],
    timeframe: Annotated[str, typer.Argument(help="Timeframe, e.g. 1h.")],
    calendar: CalendarOption = None,
    as_json: JsonOption = False,
) -> None:
    """Validate a stored series and report its gaps; exit 1 when a check fails.

    Gaps count the bars the calendar expects (the series' declared one unless --calendar).
    """
    from alphaops.services import data as service

    cli = get_context(ctx)
    report = service.check_data(cli.config, symbol, timeframe, calendar=calendar)
    if as_json:
        cli.print_json(report.to_dict())
    else:
        verdict = "[green]OK[/]" if report.ok else "[red]FAILED[/]"
        cli.console.print(
            f"{report.symbol} {report.timeframe} ({report.calendar} calendar): "
            f"{report.rows:,} candles {report.first} → {report.last}: {verdict}"
        )
        for problem in report.problems:
            cli.console.print(f"  [red]✗[/] {problem.describe()}", markup=True, highlight=False)
        gaps = report.gaps
        largest = gaps.largest
        line = f"  gaps: {gaps.count} ({gaps.missing_bars} missing bars, never filled)"
        if largest is not None:
            line += f"; largest {largest.missing_bars} bars after {largest.after}"
        cli.console.print(line)
    report.raise_for_problems()


@app.command("show")
def show(
    ctx: typer.Context,
    symbol: Annotated[str, typer.Argument(help="Symbol, e.g. BTCUSDT.")],
    timeframe: Annotated[str, typer.Argument(help="Timeframe, e.g. 1h.")],
    tail: Annotated[int | None, typer.Option(min=1, help="Show the last N candles.")] = None,
    head: Annotated[int | None, typer.Option(min=1, help="Show the first N candles.")] = None,
    start: Annotated[str | None, typer.Option(help="From this UTC time (inclusive).")] = None,
    end: Annotated[str | None, typer.Option(help="Until this UTC time (exclusive).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Print stored candles (the last 10 unless a range or --head/--tail is given)."""
    from alphaops.services import data as service

    cli = get_context(ctx)
    if tail is None and head is None and start is None and end is None:
        tail = 10
    frame = service.show_data(
        cli.config, symbol, timeframe, start=start, end=end, tail=tail, head=head
    )
    if as_json:
        records = frame.assign(timestamp=frame["timestamp"].map(lambda t: t.isoformat()))
        cli.print_json(records.to_dict(orient="records"))
        return
    table = Table("timestamp (UTC, open)", "open", "high", "low", "close", "volume")
    for row in frame.itertuples(index=False):
        table.add_row(
            f"{row.timestamp:%Y-%m-%d %H:%M}",
            *(f"{getattr(row, c):.8g}" for c in ("open", "high", "low", "close", "volume")),
        )
    cli.console.print(table)


@app.command("download")
def download(
    ctx: typer.Context,
    symbols: Annotated[str, typer.Argument(help="Comma-separated symbols, e.g. BTCUSDT,ETHUSDT.")],
    timeframe: Annotated[str, typer.Option(help="Candle timeframe.")] = "1h",
    since: Annotated[str, typer.Option(help="First candle open time (UTC).")] = "2024-01-01",
    until: Annotated[str | None, typer.Option(help="Stop before this time (default: now).")] = None,
    exchange: Annotated[
        str | None, typer.Option(help="ccxt exchange id (default from config).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Download closed candles through ccxt into the store; resumes where it stopped."""
    from alphaops.services import data as service

    cli = get_context(ctx)
    names = [s for s in symbols.split(",") if s.strip()]
    with Progress(console=cli.err, transient=True, disable=as_json) as bar:
        task = bar.add_task("downloading", total=None)

        def on_page(p: DownloadProgress) -> None:
            bar.update(
                task,
                description=f"{p.symbol} {p.timeframe} → {p.last:%Y-%m-%d %H:%M}",
                advance=p.rows,
            )

        results = service.download_data(
            cli.config,
            names,
            timeframe,
            since=since,
            until=until,
            exchange_id=exchange,
            progress=on_page,
        )
    rows = [
        {
            "exchange": r.exchange,
            "symbol": r.symbol,
            "market": r.market,
            "timeframe": str(r.timeframe),
            "requests": r.requests,
            "retries": r.retries,
            "added": r.added,
            "already_present": r.already_present,
            "first": None if r.first is None else r.first.isoformat(),
            "last": None if r.last is None else r.last.isoformat(),
        }
        for r in results
    ]
    if as_json:
        cli.print_json(rows)
        return
    table = Table(
        "symbol", "market", "tf", "requests", "retries", "added", "already stored", "last"
    )
    for r in rows:
        table.add_row(
            str(r["symbol"]),
            str(r["market"]),
            str(r["timeframe"]),
            str(r["requests"]),
            str(r["retries"]),
            f"{r['added']:,}",
            f"{r['already_present']:,}",
            str(r["last"]),
        )
    cli.console.print(table)
