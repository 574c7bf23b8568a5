"""What every CLI command receives: the frozen config, the consoles and the output mode."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

import typer
from rich.console import Console

from alphaops.core.config import AlphaOpsConfig
from alphaops.core.home import AlphaOpsHome

__all__ = ["CliContext", "get_context"]


@dataclass(frozen=True)
class CliContext:
    """Built once by the root callback and passed to every command through Typer's context."""

    config: AlphaOpsConfig
    console: Console = field(default_factory=lambda: Console(file=sys.stdout))
    err: Console = field(default_factory=lambda: Console(file=sys.stderr))

    @property
    def home(self) -> AlphaOpsHome:
        """Return the alphaops home named by the config."""
        return AlphaOpsHome(self.config.home)

    def print_json(self, data: Any) -> None:
        """Print ``data`` as JSON on stdout (no colours, no wrapping), for scripts."""
        self.console.file.write(json.dumps(data, indent=2, default=str) + "\n")


def get_context(ctx: typer.Context) -> CliContext:
    """Return the :class:`CliContext` stored by the root callback."""
    obj = ctx.find_root().obj
    assert isinstance(obj, CliContext), "the root callback always stores a CliContext"
    return obj
