"""``alphaops rollout …``: start, status, advance, pause, resume, abort."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from alphaops.cli._context import CliContext, get_context
from alphaops.cli._render import Records, print_records

if TYPE_CHECKING:  # imported in the commands: `alphaops -h` must not load the registry
    from alphaops.registry import RolloutRecord
    from alphaops.services.registry import RegistryLocation

__all__ = ["app"]

app = typer.Typer(
    help="Roll a challenger out: shadow → canary % → live, with automatic rollback.",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ModelArg = Annotated[str, typer.Argument(help="SYMBOL/TYPE")]
_WHERE = "registry_location"


@app.callback()
def _rollout(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option("--db", help="Database URL (default: the configured registry)"),
    ] = None,
    artifacts: Annotated[
        str | None, typer.Option("--artifacts", help="Artifact folder or s3://bucket/prefix")
    ] = None,
) -> None:
    from alphaops.services.registry import RegistryLocation

    ctx.meta[_WHERE] = RegistryLocation(db, artifacts)


def _ctx(ctx: typer.Context) -> tuple[CliContext, RegistryLocation]:
    from alphaops.services.registry import RegistryLocation

    where = ctx.meta.get(_WHERE, RegistryLocation())
    assert isinstance(where, RegistryLocation)
    return get_context(ctx), where


def _steps(record: RolloutRecord) -> Text:
    parts = ["shadow" if s is None else f"{s}%" for s in record.steps]
    steps = Text()
    for i, part in enumerate(parts):
        if i:
            steps.append(" → ")
        steps.append(part, style="bold" if i == record.step else "")
    return steps


def _table(records: list[RolloutRecord]) -> Records:
    columns = ("model", "id", "challenger", "champion", "phase", "traffic", "steps", "failures")
    table = Records(columns, wrap={"steps"})
    for r in records:
        traffic = "shadow" if r.shadow else f"{r.percentage}%"
        table.add_row(
            str(r.key),
            r.id,
            str(r.challenger_version),
            "-" if r.champion_version is None else str(r.champion_version),
            r.phase,
            traffic,
            _steps(r),
            f"{r.failures}/{r.max_failures}",
        )
    return table


def _show(cli: CliContext, record: RolloutRecord, as_json: bool, verb: str) -> None:
    from alphaops.services import rollout as svc

    if as_json:
        cli.print_json(svc.rollout_to_dict(record))
        return
    traffic = "shadow" if record.shadow else f"{record.percentage}%"
    line = Text(
        f"{verb} rollout {record.id} of {record.key}/{record.challenger_version}: "
        f"{record.phase} ({traffic}); steps "
    )
    cli.console.print(line.append_text(_steps(record)), soft_wrap=True)


@app.command("start")
def start(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="SYMBOL/TYPE/N (or @alias) to roll out")],
    steps: Annotated[str, typer.Option(help="Steps: optional shadow, then rising %.")] = (
        "shadow,10,50,100"
    ),
    interval: Annotated[str, typer.Option(help="Analysis interval: 90s, 15m, 1h, 1d.")] = "1h",
    max_failures: Annotated[int, typer.Option(help="Failed intervals before rollback.")] = 3,
    reason: Annotated[str, typer.Option(help="Why (goes into the audit log).")] = "rollout",
    force: Annotated[
        bool, typer.Option(help="Start canary steps although the gates did not pass (audited).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Make REF the challenger and start its rollout at the first step.

    Canary steps need the version's gates to have passed (exit 2 otherwise) unless --force is
    given with a --reason; a shadow-only rollout needs no clearance.
    """
    from alphaops.rollout import parse_interval
    from alphaops.services import rollout as svc

    cli, where = _ctx(ctx)
    seconds = parse_interval(interval)
    with svc.controller(cli.config, where) as ctl:
        record = ctl.start(
            ref,
            steps=steps,
            interval_s=seconds,
            max_failures=max_failures,
            reason=reason,
            force=force,
        )
    _show(cli, record, as_json, "started")


@app.command("status")
def status(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Argument(help="SYMBOL/TYPE (default: all)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the active rollouts (of one model, or all)."""
    from alphaops.services import rollout as svc

    cli, where = _ctx(ctx)
    with svc.controller(cli.config, where) as ctl:
        records = ctl.status(model)
    if as_json:
        cli.print_json([svc.rollout_to_dict(r) for r in records])
    elif not records:
        cli.console.print("no active rollout")
    else:
        print_records(cli.console, _table(records))


ReasonOpt = Annotated[str | None, typer.Option(help="Why (goes into the audit log).")]


@app.command("advance")
def advance(
    ctx: typer.Context, model: ModelArg, reason: ReasonOpt = None, as_json: JsonOpt = False
) -> None:
    """Go to the next step; after the last one promote the challenger (gates first)."""
    from alphaops.services import rollout as svc

    cli, where = _ctx(ctx)
    with svc.controller(cli.config, where) as ctl:
        record = ctl.advance(model, reason=reason or "advanced by hand")
    _show(cli, record, as_json, "advanced")


@app.command("pause")
def pause(
    ctx: typer.Context, model: ModelArg, reason: ReasonOpt = None, as_json: JsonOpt = False
) -> None:
    """Hold the rollout at its current step."""
    from alphaops.services import rollout as svc

    cli, where = _ctx(ctx)
    with svc.controller(cli.config, where) as ctl:
        record = ctl.pause(model, reason=reason or "paused by hand")
    _show(cli, record, as_json, "paused")


@app.command("resume")
def resume(
    ctx: typer.Context, model: ModelArg, reason: ReasonOpt = None, as_json: JsonOpt = False
) -> None:
    """Continue a paused rollout."""
    from alphaops.services import rollout as svc

    cli, where = _ctx(ctx)
    with svc.controller(cli.config, where) as ctl:
        record = ctl.resume(model, reason=reason or "resumed by hand")
    _show(cli, record, as_json, "resumed")


@app.command("abort")
def abort(
    ctx: typer.Context,
    model: ModelArg,
    reason: Annotated[str, typer.Option(help="Why (goes into the audit log).")],
    as_json: JsonOpt = False,
) -> None:
    """Roll back: remove the challenger; the champion keeps serving."""
    from alphaops.services import rollout as svc

    cli, where = _ctx(ctx)
    with svc.controller(cli.config, where) as ctl:
        record = ctl.abort(model, reason=reason)
    _show(cli, record, as_json, "aborted")
