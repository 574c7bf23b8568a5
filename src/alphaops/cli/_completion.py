"""``alphaops completion bash|zsh|fish``: print the shell script that completes alphaops.

The script asks the ``alphaops`` command itself for completions (typer's protocol: the shell
sets ``_ALPHAOPS_COMPLETE`` and the words typed so far), so completions always match the
installed version: commands, sub-commands and options.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from typer._completion_classes import completion_init
from typer._completion_shared import get_completion_script

from alphaops.cli._context import get_context

__all__ = ["COMPLETE_VAR", "completion"]

COMPLETE_VAR = "_ALPHAOPS_COMPLETE"

# typer's own completion classes (bash, zsh, fish, powershell); the app has no
# --install-completion option, which is what would otherwise register them.
completion_init()


class Shell(StrEnum):
    """The shells alphaops prints a completion script for."""

    bash = "bash"
    zsh = "zsh"
    fish = "fish"


_INSTALL = {
    Shell.bash: "alphaops completion bash > ~/.local/share/bash-completion/completions/alphaops",
    Shell.zsh: "alphaops completion zsh > ~/.zfunc/_alphaops  (with fpath+=~/.zfunc in ~/.zshrc)",
    Shell.fish: "alphaops completion fish > ~/.config/fish/completions/alphaops.fish",
}


def completion(
    ctx: typer.Context,
    shell: Annotated[Shell, typer.Argument(help="bash, zsh or fish.")],
) -> None:
    """Print the completion script for SHELL (e.g. eval "$(alphaops completion bash)").

    To install it for good: alphaops completion bash >
    ~/.local/share/bash-completion/completions/alphaops (zsh: ~/.zfunc/_alphaops; fish:
    ~/.config/fish/completions/alphaops.fish).
    """
    cli = get_context(ctx)
    script = get_completion_script(prog_name="alphaops", complete_var=COMPLETE_VAR, shell=shell)
    cli.console.file.write(f"# {_INSTALL[shell]}\n{script}\n")
