"""The README stays true: its Python tour runs, its two set-up commands exist, CI calls one."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_readme_has_exactly_the_two_setup_commands_and_ci_calls_the_test_command() -> None:
    setup = README.split("## Set up", 1)[1].split("## A short tour", 1)[0]
    commands = re.findall(r"```bash\n(.+?)\n```", setup, re.S)
    assert commands == ["bash scripts/quickstart.sh", "bash scripts/test.sh"]
    assert "bash scripts/test.sh" in (REPO / ".ci" / "run").read_text()


def test_the_python_tour_in_the_readme_runs(data_dir: Path, tmp_path: Path) -> None:
    (block,) = re.findall(r"```python\n(.+?)\n```", README, re.S)
    code = block.replace("../shared/data", str(data_dir))
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=os.environ | {"ALPHAOPS_HOME": str(tmp_path / "home")},
        check=False,
    )
    assert result.returncode == 0, result.stderr
