"""``alphaops registry …``: list, show, diff, history, verify, promote, rollback, aliases, upkeep."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from alphaops.cli._context import CliContext, get_context
from alphaops.cli._render import Records, print_records, verdict
from alphaops.core.config import check_database_url
from alphaops.core.errors import ERROR_TABLE, IntegrityError, UsageError

if TYPE_CHECKING:  # imported in the commands: `alphaops -h` must not load the registry
    from alphaops.registry import AliasMove, ModelVersion
    from alphaops.services import registry as svc

__all__ = ["app"]

app = typer.Typer(
    help="Versioned, verified model bundles with audited aliases.", no_args_is_help=True
)
alias_app = typer.Typer(help="Set or remove user aliases (and 'challenger').", no_args_is_help=True)
app.add_typer(alias_app, name="alias")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (goes into the audit log).")]
_WHERE = "registry_location"


@app.callback()
def _registry(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Database URL (env ALPHAOPS_REGISTRY__DATABASE_URL; default: SQLite in the home)",
        ),
    ] = None,
    artifacts: Annotated[
        str | None, typer.Option("--artifacts", help="Artifact folder or s3://bucket/prefix")
    ] = None,
) -> None:
    from alphaops.services.registry import RegistryLocation

    ctx.meta[_WHERE] = RegistryLocation(
        None if db is None else check_database_url(db, source="--db"), artifacts
    )


def _ctx(ctx: typer.Context) -> tuple[CliContext, svc.RegistryLocation]:
    from alphaops.services.registry import RegistryLocation

    where = ctx.meta.get(_WHERE, RegistryLocation())
    assert isinstance(where, RegistryLocation)
    return get_context(ctx), where


def _print_move(cli: CliContext, move: AliasMove, as_json: bool, verb: str) -> None:
    from alphaops.services import registry as svc

    if as_json:
        cli.print_json(svc.move_to_dict(move))
        return
    before = "unset" if move.from_version is None else move.from_version
    after = "unset" if move.to_version is None else move.to_version
    cli.console.print(
        f"{verb} {move.key}@{move.alias}: {before} → {after} (generation {move.generation})"
    )


def _versions_table(versions: list[ModelVersion], gates: dict[str, bool]) -> Records:
    columns = ("model", "version", "aliases", "gates", "created", "by", "size", "metrics")
    table = Records(columns, wrap={"aliases", "metrics"})
    for v in versions:
        metrics = ", ".join(f"{k}={val:.4g}" for k, val in sorted(v.manifest.metrics.items()))
        table.add_row(
            str(v.key),
            str(v.version),
            ", ".join(v.aliases),
            verdict(gates.get(v.ref)),
            v.created_at.strftime("%Y-%m-%d %H:%M"),
            v.created_by,
            f"{v.size_bytes / 1024:.1f} KiB",
            metrics,
        )
    return table


@app.command("list")
def list_(
    ctx: typer.Context,
    selector: Annotated[str | None, typer.Argument(help="SYMBOL or SYMBOL/TYPE")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List published versions (with their newest gate verdict), of all, a symbol or a model."""
    from alphaops.services import registry as svc

    cli, where = _ctx(ctx)
    listing = svc.list_versions_with_gates(cli.config, where, selector)
    if as_json:
        cli.print_json(
            [
                svc.version_to_dict(v)
                | {"manifest": None, "gates_passed": listing.gates.get(v.ref)}
                for v in listing.versions
            ]
        )
    elif not listing.versions:
        cli.console.print("no versions published yet")
    else:
        print_records(cli.console, _versions_table(listing.versions, listing.gates))


@app.command("show")
def show(ctx: typer.Context, ref: str, as_json: JsonOpt = False) -> None:
    """Show one version: aliases, newest gate run, manifest summary, files."""
    from alphaops.services import registry as svc

    cli, where = _ctx(ctx)
    shown = svc.show(cli.config, where, ref)
    v = shown.version
    if as_json:
        cli.print_json(svc.version_to_dict(v) | {"gates": svc.gate_run_to_dict(shown.gates)})
        return
    m = v.manifest
    lines = [
        f"[bold]{v.ref}[/] aliases: {', '.join(v.aliases) or '-'}",
        f"created {v.created_at.isoformat()} by {v.created_by}; at {v.location}",
        f"input {m.input.kind} {m.input.shape}; features {', '.join(f.name for f in m.features)}",
        f"label {m.label.rule} h={m.label.horizon} classes {m.label.class_order}",
        f"decision {_decision_line(m)}",
        f"data {m.data.timeframe} {m.data.start.isoformat()} → {m.data.end.isoformat()} "
        f"fingerprint {m.data.fingerprint[:12]}",
        f"seed {m.seed}; code {m.code_version}; metrics {m.metrics}",
        _gates_line(shown),
    ]
    for line in lines:
        cli.console.print(line, highlight=False)
    table = Table("file", "size", "sha256")
    for f in m.files:
        table.add_row(f.path, str(f.size), f.sha256[:16])
    cli.console.print(table)


def _decision_line(manifest: Any) -> str:
    # How the version turns probabilities into positions (argmax for bundles without a rule).
    from alphaops.core.errors import AlphaOpsError
    from alphaops.scoring import decision_rule_of

    try:
        return decision_rule_of(manifest).describe()
    except AlphaOpsError as exc:
        return f"unusable ({exc.message})"


def _gates_line(shown: svc.ShownVersion) -> str:
    from alphaops.services import registry as svc

    run = shown.gates
    if run is None:
        return f"gates never ran (run: alphaops gate run {shown.version.ref})"
    when = f"{run.created_at.strftime('%Y-%m-%d %H:%M:%S')} UTC by {run.actor}"
    if run.passed:
        return f"gates [green]PASS[/] {when} (run {run.run_id})"
    failed = ", ".join(svc.failed_checks(run)) or "see the attached report"
    return f"gates [red]FAIL[/] {when} (run {run.run_id}): {failed}"


@app.command("diff")
def diff(ctx: typer.Context, left: str, right: str, as_json: JsonOpt = False) -> None:
    """Show what differs between two versions: metrics, features, parameters, data, files."""
    from alphaops.services import registry as svc

    cli, where = _ctx(ctx)
    changes = svc.diff_versions(cli.config, where, left, right)
    if as_json:
        cli.print_json({s: {k: list(v) for k, v in c.items()} for s, c in changes.items()})
        return
    if not changes:
        cli.console.print("no differences")
        return
    table = Table("section", "field", left, right)
    for section, fields in changes.items():
        for name, (a, b) in fields.items():
            table.add_row(section, name, _short(a), _short(b))
    cli.console.print(table)


def _short(value: Any) -> str:
    text = "-" if value is None else str(value)
    return text if len(text) <= 40 else text[:37] + "…"


@app.command("history")
def history(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="SYMBOL/TYPE")],
    limit: Annotated[
        int | None, typer.Option(min=1, help="Show only the newest N records.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the audit log of one model (who moved which alias, when and why)."""
    from alphaops.services import registry as svc

    cli, where = _ctx(ctx)
    records = svc.history(cli.config, where, model, limit)
    if as_json:
        cli.print_json([svc.audit_to_dict(r) for r in records])
        return
    columns = ("when", "actor", "action", "alias", "from", "to", "reason", "gen")
    table = Records(columns, wrap={"reason"})
    for r in records:
        table.add_row(
            r.at.strftime("%Y-%m-%d %H:%M:%S"),
            r.actor,
            r.action,
            r.alias or "",
            "" if r.from_version is None else str(r.from_version),
            "" if r.to_version is None else str(r.to_version),
            r.reason,
            str(r.generation),
        )
    print_records(cli.console, table)


@app.command("verify")
def verify(
    ctx: typer.Context,
    ref: Annotated[str | None, typer.Argument(help="One version; all when omitted")] = None,
    smoke_test: Annotated[bool, typer.Option(help="Run each model on its reference batch.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Verify checksums, manifests and smoke tests; exit 1 if anything is wrong."""
    from alphaops.services import registry as svc

    cli, where = _ctx(ctx)
    report = svc.verify(cli.config, where, ref, smoke_test=smoke_test)
    if as_json:
        cli.print_json(
            {
                "ok": report.ok,
                "checked": report.checked,
                "problems": [p.__dict__ for p in report.problems],
            }
        )
    else:
        for problem in report.problems:
            cli.err.print(f"[red]{problem.where}[/]: {problem.message}", highlight=False)
        cli.console.print(
            f"checked {len(report.checked)} version(s): {'ok' if report.ok else 'FAILED'}"
        )
    if not report.ok:
        if as_json:  # the report above is the one JSON document; the exit code says failed
            raise typer.Exit(ERROR_TABLE[IntegrityError.code].exit_code)
        first = report.problems[0]
        raise IntegrityError(
            f"{len(report.problems)} problem(s), first at {first.where}",
            fix="restore the files, or re-publish the version",
        )


@app.command("promote")
def promote(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="SYMBOL/TYPE/VERSION (or @alias) to promote")],
    expect: Annotated[str, typer.Option(help="The version you expect is current now, or 'none'.")],
    reason: ReasonOpt,
    alias: Annotated[str, typer.Option(help="Alias to move.")] = "champion",
    force: Annotated[
        bool, typer.Option(help="Promote to champion past failed or missing gates (audited).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Promote a version by compare-and-swap: refused if the current one is not --expect.

    Promotion to champion is fail-closed: refused (exit 2) unless the version's gates passed,
    or --force is given with --reason, which the audit log records.
    """
    from alphaops.services import registry as svc

    cli, where = _ctx(ctx)
    parsed = svc.parse_expect(expect)
    move = svc.promote(
        cli.config, where, ref, expect=parsed, reason=reason, alias=alias, force=force
    )
    _print_move(cli, move, as_json, "promoted")


@app.command("rollback")
def rollback(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="SYMBOL/TYPE")],
    reason: ReasonOpt,
    expect: Annotated[str | None, typer.Option(help="The champion you expect now.")] = None,
    to: Annotated[
        int | None, typer.Option(help="A former champion to return to (even one rolled back from).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Make the previous champion the champion again.

    Repeated rollbacks walk back the champion history and never return to a version that was
    rolled back from, unless it is named with --to.
    """
    from alphaops.services import registry as svc

    cli, where = _ctx(ctx)
    move = svc.rollback(
        cli.config, where, model, reason=reason, expect=svc.parse_expect(expect), to=to
    )
    _print_move(cli, move, as_json, "rolled back")


@alias_app.command("set")
def alias_set(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="SYMBOL/TYPE")],
    alias: str,
    version: int,
    reason: ReasonOpt,
    expect: Annotated[str | None, typer.Option(help="The version you expect now.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Point an alias at a version."""
    from alphaops.services import registry as svc

    cli, where = _ctx(ctx)
    move = svc.set_alias(
        cli.config, where, model, alias, version, reason=reason, expect=svc.parse_expect(expect)
    )
    _print_move(cli, move, as_json, "set")


@alias_app.command("rm")
def alias_rm(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="SYMBOL/TYPE")],
    alias: str,
    reason: ReasonOpt,
    expect: Annotated[str | None, typer.Option(help="The version you expect now.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove an alias."""
    from alphaops.services import registry as svc

    cli, where = _ctx(ctx)
    move = svc.remove_alias(
        cli.config, where, model, alias, reason=reason, expect=svc.parse_expect(expect)
    )
    _print_move(cli, move, as_json, "removed")


@app.command("prune")
def prune(
    ctx: typer.Context,
    keep_last: Annotated[int | None, typer.Option(help="Keep the newest N per model.")] = None,
    max_age_days: Annotated[float | None, typer.Option(help="Remove older versions.")] = None,
    max_size_mb: Annotated[float | None, typer.Option(help="Cap each model's total size.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Only report what would go.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove old versions; never champion, challenger, previous or any aliased version."""
    from alphaops.services import registry as svc

    cli, where = _ctx(ctx)
    _amount("--max-age-days", max_age_days)
    size = None if max_size_mb is None else int(_amount("--max-size-mb", max_size_mb) * 1024**2)
    from alphaops.registry import PrunePolicy

    policy = PrunePolicy(keep_last=keep_last, max_age_days=max_age_days, max_total_bytes=size)
    report = svc.prune(cli.config, where, policy, dry_run=dry_run)
    if as_json:
        cli.print_json(report.__dict__)
        return
    verb = "would remove" if dry_run else "removed"
    cli.console.print(f"{verb} {len(report.removed)} version(s), {report.freed_bytes} bytes")
    for ref in report.removed:
        cli.console.print(f"  {ref}", highlight=False)


def _amount(option: str, value: float | None) -> float:
    # Typer accepts 'inf' and 'nan' for a float option; neither is an age, a size or a delay.
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise UsageError(
            f"{option} {value} is not a finite number of 0 or more", fix=f"pass e.g. {option} 30"
        )
    return 0.0 if value is None else value


@app.command("doctor")
def doctor(
    ctx: typer.Context,
    fix: Annotated[bool, typer.Option("--fix", help="Repair what is found.")] = False,
    grace_s: Annotated[
        float, typer.Option(help="Leave files younger than this alone (a publish may be running).")
    ] = 3600.0,
    as_json: JsonOpt = False,
) -> None:
    """Find orphaned files, stuck publishes and stale latest links; repair with --fix."""
    from alphaops.services import registry as svc

    cli, where = _ctx(ctx)
    report = svc.doctor(cli.config, where, fix=fix, grace_s=_amount("--grace-s", grace_s))
    if as_json:
        cli.print_json({"ok": report.ok, "findings": [f.__dict__ for f in report.findings]})
        return
    for f in report.findings:
        state = "fixed" if f.fixed else "found"
        cli.console.print(f"{state} {f.kind}: {f.where}: {f.message}", highlight=False)
    cli.console.print("healthy" if not report.findings else f"{len(report.findings)} finding(s)")


@app.command("export")
def export(
    ctx: typer.Context,
    ref: str,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Archive path.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write one version as a single verified .tar.gz archive."""
    from alphaops.services import registry as svc

    cli, where = _ctx(ctx)
    path = svc.export_version(cli.config, where, ref, output)
    if as_json:
        cli.print_json({"archive": str(path)})
    else:
        cli.console.print(f"exported {ref} to {path}", highlight=False)


@app.command("import")
def import_(ctx: typer.Context, archive: Path, as_json: JsonOpt = False) -> None:
    """Verify an exported archive and publish it as a new version."""
    from alphaops.services import registry as svc

    cli, where = _ctx(ctx)
    v = svc.import_archive(cli.config, where, archive)
    if as_json:
        cli.print_json(svc.version_to_dict(v))
    else:
        cli.console.print(f"imported {archive} as {v.ref}", highlight=False)


@app.command("publish")
def publish(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="A bundle folder with manifest.json")],
    as_json: JsonOpt = False,
) -> None:
    """Verify a bundle folder and publish it as the next version of its model."""
    from alphaops.services import registry as svc

    cli, where = _ctx(ctx)
    if not folder.is_dir():
        raise UsageError(f"bundle folder {folder} does not exist", fix="pass a bundle folder")
    v = svc.publish(cli.config, where, folder)
    if as_json:
        cli.print_json(svc.version_to_dict(v))
    else:
        cli.console.print(f"published {v.ref}", highlight=False)
