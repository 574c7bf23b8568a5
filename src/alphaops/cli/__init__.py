"""The ``alphaops`` command line: a thin shell that parses, calls one service, and renders.

Exit codes: 0 success, 1 usage or runtime error (every :class:`AlphaOpsError`), 2 a gate
failed (a blocker), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).

Rule for every module in this package — **import lazily**. ``alphaops -h`` and every command
load all of ``alphaops.cli``; at module level a CLI module may import only the standard
library, ``typer``, ``rich``, ``alphaops.core`` and other ``alphaops.cli`` modules. Import
``alphaops.services`` and anything behind it (registry, data, training, gates, pandas, numpy,
scipy, torch …) inside the command function that needs it; names used only in annotations go
under ``if TYPE_CHECKING:``; option help that lists library names reads them from
``alphaops.cli._names``. ``tests/test_cli_startup.py`` imports each module here in a fresh
process and fails when one loads a heavy library.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from alphaops._version import __version__
from alphaops.cli import (
    _activate,
    _autopilot,
    _completion,
    _data,
    _dataset,
    _gates,
    _import,
    _journal,
    _quickstart,
    _registry,
    _rollout,
    _serve,
    _train,
)
from alphaops.cli._context import CliContext, get_context
from alphaops.core.config import load_config
from alphaops.core.errors import AlphaOpsError
from alphaops.core.logs import configure_logging, level_for, reset_logging

__all__ = ["app", "main", "run"]

log = logging.getLogger(__name__)
_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")  # a database URL's password is never logged
_INTERRUPTED = 130  # 128 + SIGINT: the exit code of a run stopped by Ctrl-C


@dataclass(frozen=True)
class _Invocation:
    """What :func:`main` hands the root callback (which replaces it with the CliContext)."""

    argv: tuple[str, ...]


app = typer.Typer(
    name="alphaops",
    help="Manage the whole life of the models behind your trading bots.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(_data.app, name="data")
app.add_typer(_dataset.app, name="dataset")
app.add_typer(_registry.app, name="registry")
app.add_typer(_train.app, name="train")
app.add_typer(_gates.app, name="gate")
app.add_typer(_rollout.app, name="rollout")
app.add_typer(_activate.app, name="activate")
app.command("rollback")(_registry.rollback)
app.command("scoreboard")(_gates.scoreboard)
app.command("quickstart")(_quickstart.quickstart)
app.add_typer(_journal.app, name="journal")
app.command("monitor")(_journal.monitor)
app.add_typer(_journal.alarm_app, name="alarm")
app.command("completion")(_completion.completion)
app.add_typer(_autopilot.app, name="autopilot")
app.command("replay")(_autopilot.replay)
app.command("serve")(_serve.serve)
app.add_typer(_serve.token_app, name="token")
app.add_typer(_import.app, name="import")
app.command("export")(_import.export)
config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


def _print_version(value: bool) -> None:
    # `alphaops --version` alone never gets here: alphaops.__main__ answers it without
    # importing the CLI. This covers it among other options (`--home H --version`).
    if value:
        typer.echo(__version__)
        raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(help="alphaops home folder (env ALPHAOPS_HOME; default ./.alphaops)"),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="YAML config file (env ALPHAOPS_CONFIG)")
    ] = None,
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            is_eager=True,
            callback=_print_version,
            help="Print the alphaops version and exit.",
        ),
    ] = False,
    verbose: Annotated[
        int,
        typer.Option(
            "--verbose",
            "-v",
            count=True,
            help="Log more on stderr: -v INFO, -vv DEBUG (env ALPHAOPS_LOG_LEVEL; default WARNING).",
        ),
    ] = 0,
    log_file: Annotated[
        Path | None,
        typer.Option(
            "--log-file",
            help="Append log lines (INFO and above, DEBUG with -vv) to this file.",
        ),
    ] = None,
) -> None:
    loaded = load_config(config, home=home)
    level = level_for(loaded.log_level, verbose)
    configure_logging(level, log_file=log_file)
    argv = ctx.obj.argv if isinstance(ctx.obj, _Invocation) else (ctx.invoked_subcommand or "",)
    log.info(
        "alphaops %s: %s (home %s, config %s)",
        __version__,
        _PASSWORD.sub(r"\1***@", shlex.join(argv)),
        loaded.home,
        loaded.config_hash[:12],
    )
    log.debug(
        "log level %s (%s)",
        level,
        "from -v" if verbose else "from the config's log_level / ALPHAOPS_LOG_LEVEL",
    )
    ctx.obj = CliContext(loaded)


@app.command("version")
def version() -> None:
    """Print the alphaops version."""
    typer.echo(__version__)


@config_app.command("show")
def config_show(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print the effective configuration and its hash."""
    cli = get_context(ctx)
    data = cli.config.model_dump(mode="json") | {"config_hash": cli.config.config_hash}
    if as_json:
        cli.print_json(data)
    else:
        for key, value in data.items():
            cli.console.print(f"[bold]{key}[/]: {value}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (errors are rendered, never raised)."""
    args = list(sys.argv[1:] if argv is None else argv)
    began = time.perf_counter()
    try:
        code = _invoke(args)
        log.info("exit %d after %.2f s", code, time.perf_counter() - began)
        return code
    finally:
        reset_logging()  # closes the --log-file; main() may run again in this process


def _invoke(args: list[str]) -> int:
    wants_json = "--json" in args
    try:
        result = app(
            args=args, prog_name="alphaops", standalone_mode=False, obj=_Invocation(tuple(args))
        )
    except AlphaOpsError as exc:
        log.info("failed (%s): %s", exc.code, _PASSWORD.sub(r"\1***@", exc.message))
        log.debug("where it failed", exc_info=True)
        _render_error(exc, wants_json)
        return exc.exit_code
    except typer.Exit as exc:
        return _interrupted() if exc.exit_code == _INTERRUPTED else int(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        return _interrupted()
    except typer.TyperException as exc:
        # Usage errors: click would exit with 2, which alphaops reserves for failed gates.
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            Console(file=sys.stderr).print(str(exc), markup=False)
        return 1
    # Typer turns a KeyboardInterrupt into Exit(130) and, outside standalone mode, returns that
    # code instead of raising: 130 is only ever an interrupt here (no command exits with it).
    code = result if isinstance(result, int) else 0
    return _interrupted() if code == _INTERRUPTED else code


def _interrupted() -> int:
    Console(file=sys.stderr).print("[yellow]interrupted[/]")
    return _INTERRUPTED


def _render_error(exc: AlphaOpsError, wants_json: bool) -> None:
    if wants_json:
        sys.stdout.write(json.dumps(exc.to_dict(), indent=2, default=str) + "\n")
        return
    # soft_wrap: a path or a ref in the message is never broken by an inserted newline.
    err = Console(file=sys.stderr, highlight=False, soft_wrap=True)
    message = _PASSWORD.sub(r"\1***@", exc.message)  # a password in a URL is never shown
    err.print(Text.assemble(("error", "bold red"), f" ({exc.code}): {message}"))
    if exc.fix:
        err.print(Text.assemble(("fix", "bold"), f": {exc.fix}"))


def run() -> None:
    """Console-script entry point: run :func:`main` and exit with its code.

    The signal handling (``SIGTERM`` like Ctrl-C, exit 143) lives in ``alphaops.__main__``,
    whose ``run`` is the better console entry: it imports the CLI inside its ``try``.
    """
    from alphaops.__main__ import run as entry

    entry()
