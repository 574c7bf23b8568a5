"""``alphaops completion SHELL`` prints a script the shell accepts and that completes alphaops."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent  # the virtualenv's bin folder, holding the `alphaops` script


def _script(shell: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "alphaops", "completion", shell],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def _complete(script: Path, *words: str) -> list[str]:
    """Source the script in bash, as a user's shell does, and press TAB after ``words``."""
    line = " ".join(words)
    program = (
        f"source {script}\n"
        f"COMP_WORDS=(alphaops {line})\n"
        f"COMP_CWORD={len(words)}\n"
        "_alphaops_completion alphaops\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = os.environ | {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        ["bash", "--norc", "-c", program], capture_output=True, text=True, env=env, check=True
    )
    return [w for w in done.stdout.splitlines() if w]


def test_the_bash_script_is_valid_bash_and_completes_commands_subcommands_and_options(
    tmp_path: Path,
) -> None:
    assert (BIN / "alphaops").exists(), "the alphaops console script is not installed"
    script = tmp_path / "alphaops.bash"
    script.write_text(_script("bash"))
    subprocess.run(["bash", "-n", str(script)], check=True)  # syntax check
    assert _complete(script, "reg") == ["registry"]
    assert set(_complete(script, "r")) == {"registry", "rollout", "rollback", "replay"}
    assert "list" in _complete(script, "registry", "l")
    assert "--json" in _complete(script, "registry", "list", "--j")
    assert "--verbose" in _complete(script, "--ver")


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts_name_the_command_and_its_completion_variable(shell: str) -> None:
    text = _script(shell)
    assert "_ALPHAOPS_COMPLETE=complete_" + shell in text
    assert "alphaops" in text
    if shutil.which(shell):  # syntax-check with the real shell where it is installed
        subprocess.run([shell, "-n"], input=text, text=True, check=True)


def test_an_unknown_shell_is_a_usage_error_listing_the_shells() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "alphaops", "completion", "tcsh"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "tcsh" in done.stderr
    assert "bash" in done.stderr
