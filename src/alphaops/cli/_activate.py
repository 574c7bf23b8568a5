"""``alphaops activate …``: point a bot's env file at a version, restart, health-check."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from alphaops.cli._context import get_context
from alphaops.core.config import check_database_url
from alphaops.core.errors import UsageError

if TYPE_CHECKING:  # imported in the commands: `alphaops -h` must not load the registry
    from alphaops.services.registry import RegistryLocation

__all__ = ["app"]

app = typer.Typer(
    help="Activate a version in a bot that reads its model from an env file (gates first).",
    invoke_without_command=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
EnvFileOpt = Annotated[Path | None, typer.Option("--env-file", help="The bot's env file.")]
RestartOpt = Annotated[
    str | None, typer.Option("--restart-cmd", help="Command that restarts the bot.")
]


def _where(db: str | None, artifacts: str | None) -> RegistryLocation:
    from alphaops.services.registry import RegistryLocation

    return RegistryLocation(
        None if db is None else check_database_url(db, source="--db"), artifacts
    )


@app.callback()
def activate(
    ctx: typer.Context,
    env_file: EnvFileOpt = None,
    key: Annotated[str | None, typer.Option("--key", help="The env key naming the model.")] = None,
    ref: Annotated[str | None, typer.Option("--ref", help="SYMBOL/TYPE/N or @alias.")] = None,
    restart_cmd: RestartOpt = None,
    health_cmd: Annotated[
        str | None, typer.Option("--health-cmd", help="Command that exits 0 when healthy.")
    ] = None,
    value: Annotated[
        str, typer.Option(help="Write the bundle folder ('path') or the reference ('ref').")
    ] = "path",
    reason: Annotated[str, typer.Option(help="Why (goes into the audit log).")] = "activate",
    db: Annotated[str | None, typer.Option("--db", help="Registry database URL.")] = None,
    artifacts: Annotated[str | None, typer.Option("--artifacts", help="Artifacts.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Gate, back up, edit one key atomically, audit, restart, health-check (restore on failure)."""
    if ctx.invoked_subcommand is not None:
        return
    missing = [
        name
        for name, given in (
            ("--env-file", env_file),
            ("--key", key),
            ("--ref", ref),
            ("--restart-cmd", restart_cmd),
            ("--health-cmd", health_cmd),
        )
        if given is None
    ]
    if (
        env_file is None
        or key is None
        or ref is None
        or restart_cmd is None
        or health_cmd is None
        or value not in ("path", "ref")
    ):
        raise UsageError(
            f"activate needs {', '.join(missing) or 'a --value of path or ref'}",
            fix="alphaops activate --env-file F --key K --ref REF --restart-cmd CMD --health-cmd CMD",
        )
    from alphaops.services import activate as svc

    cli = get_context(ctx)
    done = svc.activate(
        cli.config,
        _where(db, artifacts),
        env_file=env_file,
        key=key,
        ref=ref,
        restart_cmd=restart_cmd,
        health_cmd=health_cmd,
        reason=reason,
        value="path" if value == "path" else "ref",
    )
    result = {
        "ref": done.ref,
        "env_file": str(done.env_file),
        "key": done.key,
        "value": done.value,
        "backup": str(done.backup),
        "healthy": True,
    }
    if as_json:
        cli.print_json(result)
    else:
        cli.console.print(
            f"activated {done.ref} in {done.env_file} ({done.key}); healthy; backup {done.backup}"
        )


@app.command("rollback-last")
def rollback_last(
    ctx: typer.Context,
    env_file: Annotated[Path, typer.Option("--env-file", help="The bot's env file.")],
    restart_cmd: RestartOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    reason: Annotated[str, typer.Option(help="Why (goes into the audit log).")] = "rollback-last",
    db: Annotated[str | None, typer.Option("--db", help="Registry database URL.")] = None,
    artifacts: Annotated[str | None, typer.Option("--artifacts", help="Artifacts.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Restore the most recent backup of the env file (after a confirmation); audited."""
    from alphaops.services import activate as svc

    cli = get_context(ctx)

    def confirm(backup: Path) -> bool:
        return yes or typer.confirm(
            f"restore {env_file} from {backup.name}?", default=False, err=True
        )

    restored = svc.rollback_last(
        env_file,
        confirm=confirm,
        restart_cmd=restart_cmd,
        config=cli.config,
        where=_where(db, artifacts),
        reason=reason,
    )
    if as_json:
        cli.print_json(
            {
                "env_file": str(env_file),
                "restored_from": str(restored.backup) if restored else None,
                "undid": restored.undid if restored else None,
            }
        )
    elif restored is None:
        cli.console.print("nothing changed")
    else:
        undid = (
            f"; undid the activation of {restored.undid} (audited)"
            if restored.undid
            else "; the backup has no activation record, so nothing was audited"
        )
        cli.console.print(f"restored {env_file} from {restored.backup.name}{undid}")
