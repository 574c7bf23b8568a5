"""The command starts fast where it can: ``--version`` imports nothing heavy."""

from __future__ import annotations

import subprocess
import sys

from alphaops import __version__

PROBE = """
import sys
sys.argv = ["alphaops", *sys.argv[1:]]
from alphaops.__main__ import run
try:
    run()
except SystemExit as exc:
    heavy = sorted(m for m in ("pandas", "numpy", "typer", "alphaops.cli") if m in sys.modules)
    print(exc.code, heavy)
"""


def test_version_flag_answers_without_importing_the_cli_or_pandas() -> None:
    for flag in ("--version", "-V"):
        done = subprocess.run(
            [sys.executable, "-c", PROBE, flag], capture_output=True, text=True, check=True
        )
        assert done.stdout.splitlines() == [__version__, "0 []"]


def test_version_flag_among_other_options_and_short_help_work() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "alphaops", "--home", "/nonexistent/h", "-V"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout.strip()) == (0, __version__)
    done = subprocess.run(
        [sys.executable, "-m", "alphaops", "-h"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    assert "--version" in done.stdout
