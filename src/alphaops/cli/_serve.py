"""``alphaops serve`` and ``alphaops token create|list|revoke``.

FastAPI, uvicorn and the services are imported inside the commands: ``alphaops -h`` stays fast
and works without the ``serve`` extra.
"""

from __future__ import annotations

import getpass
from typing import Annotated

import typer

from alphaops.cli._context import get_context

__all__ = ["serve", "token_app"]

token_app = typer.Typer(help="Manage the API tokens of alphaops serve.", no_args_is_help=True)
DbOpt = Annotated[
    str | None, typer.Option("--db", help="Database URL (default: the configured registry)")
]
ArtifactsOpt = Annotated[
    str | None, typer.Option("--artifacts", help="Artifact folder or s3://bucket/prefix")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Who uses it (goes into the audit log).")],
    role: Annotated[str, typer.Option(help="viewer, operator or admin.")] = "viewer",
    db: DbOpt = None,
    artifacts: ArtifactsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a token and print it once (only its hash is stored)."""
    from alphaops.services.registry import RegistryLocation
    from alphaops.services.tokens import create_token, token_to_dict

    cli = get_context(ctx)
    token, secret = create_token(
        cli.config, RegistryLocation(db, artifacts), name, role, actor=_actor()
    )
    if as_json:
        cli.print_json(token_to_dict(token) | {"token": secret})
        return
    cli.console.print(f"created {token.role.value} token {token.name!r}; it is shown only once:")
    cli.console.file.write(secret + "\n")


@token_app.command("list")
def token_list(
    ctx: typer.Context, db: DbOpt = None, artifacts: ArtifactsOpt = None, as_json: JsonOpt = False
) -> None:
    """List the tokens (never their secrets)."""
    from rich.table import Table

    from alphaops.services.registry import RegistryLocation
    from alphaops.services.tokens import list_tokens, token_to_dict

    cli = get_context(ctx)
    tokens = list_tokens(cli.config, RegistryLocation(db, artifacts))
    if as_json:
        cli.print_json([token_to_dict(t) for t in tokens])
        return
    table = Table("name", "role", "prefix", "created", "by", "revoked")
    for t in tokens:
        revoked = "" if t.revoked_at is None else f"{t.revoked_at:%Y-%m-%d %H:%M} by {t.revoked_by}"
        table.add_row(
            t.name, t.role.value, t.prefix + "…", f"{t.created_at:%Y-%m-%d %H:%M}",
            t.created_by, revoked,
        )  # fmt: skip
    cli.console.print(table if tokens else "no API token")


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The token's name.")],
    db: DbOpt = None,
    artifacts: ArtifactsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke a token: its next request gets 401."""
    from alphaops.services.registry import RegistryLocation
    from alphaops.services.tokens import revoke_token, token_to_dict

    cli = get_context(ctx)
    token = revoke_token(cli.config, RegistryLocation(db, artifacts), name, actor=_actor())
    if as_json:
        cli.print_json(token_to_dict(token))
    else:
        cli.console.print(f"revoked token {token.name!r}")


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address; beyond loopback needs tokens.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    predict: Annotated[
        list[str] | None,
        typer.Option(help="SYMBOL/TYPE to serve on /v2/models/SYMBOL.TYPE/infer (repeat)."),
    ] = None,
    anonymous_read: Annotated[
        bool, typer.Option(help="Reads without a token (loopback only).")
    ] = False,
    webhook: Annotated[
        list[str] | None,
        typer.Option(
            help="URL receiving signed events (repeat); secret in ALPHAOPS_WEBHOOK_SECRET."
        ),
    ] = None,
    db: DbOpt = None,
    artifacts: ArtifactsOpt = None,
) -> None:
    """Serve the HTTP API, the Open Inference Protocol, the dashboard (/ui) and /metrics."""
    import os

    from alphaops.core.errors import ConfigError
    from alphaops.serve import ServeConfig, WebhookConfig
    from alphaops.services.registry import RegistryLocation

    cli = get_context(ctx)
    hooks: tuple[WebhookConfig, ...] = ()
    if webhook:
        secret = os.environ.get("ALPHAOPS_WEBHOOK_SECRET", "")
        if len(secret) < 16:
            raise ConfigError(
                "--webhook needs a signing secret of at least 16 characters",
                fix="export ALPHAOPS_WEBHOOK_SECRET=… (share it with the receiver)",
            )
        hooks = tuple(WebhookConfig(url=u, secret=secret) for u in webhook)
    try:
        config = ServeConfig(
            host=host, port=port, predict=tuple(predict or ()), anonymous_read=anonymous_read,
            webhooks=hooks,
        )  # fmt: skip
    except ValueError as exc:
        raise ConfigError(f"invalid serve options: {exc}", fix="correct the option") from exc
    import uvicorn

    from alphaops.serve._app import close_state, create_app, open_state

    where = RegistryLocation(db, artifacts)
    # Check before binding (registry, tokens, loopback): a refused start never listens.
    close_state(
        open_state(cli.config, config.model_copy(update={"predict": (), "webhooks": ()}), where)
    )
    app = create_app(cli.config, config, where)
    cli.err.print(f"alphaops serve on http://{host}:{port} (dashboard /ui, API /docs)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
