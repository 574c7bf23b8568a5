"""``alphaops activate`` takes the champion as it is, even one promoted past its gates.

The forced promotion is already an audited decision (and a bot following the champion
serves it anyway); activating any other ungated version is still refused (exit 2).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alphaops.cli import main
from alphaops.registry import open_registry
from alphaops.registry.testing import build_tiny_bundle, publish_cleared


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """BTCUSDT/logreg/1 cleared by its gates; /2 never gated, force-promoted to champion."""
    home = tmp_path / "home"
    with open_registry(home) as registry:
        publish_cleared(registry, build_tiny_bundle(tmp_path / "b1", seed=1))
        registry.publish(build_tiny_bundle(tmp_path / "b2", seed=2))
        registry.publish(build_tiny_bundle(tmp_path / "b3", seed=3))
    assert main(["--home", str(home), "registry", "promote", "BTCUSDT/logreg/2",
                 "--expect", "none", "--force", "--reason", "ship it past the gates"]) == 0  # fmt: skip
    return home


def activate(home: Path, env: Path, ref: str) -> list[str]:
    return [
        "--home", str(home), "activate", "--env-file", str(env), "--key", "MODEL",
        "--ref", ref, "--restart-cmd", "true", "--health-cmd", "true", "--value", "ref",
    ]  # fmt: skip


def test_activating_a_champion_promoted_with_force_succeeds_and_is_audited(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = tmp_path / "bot.env"
    env.write_text("MODEL=old\n")
    capsys.readouterr()
    assert main(activate(home, env, "BTCUSDT/logreg@champion")) == 0, capsys.readouterr().err
    assert env.read_text() == "MODEL=BTCUSDT/logreg/2\n"
    capsys.readouterr()
    assert main(["--home", str(home), "registry", "history", "BTCUSDT/logreg", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    (activation,) = [r for r in records if r["action"] == "activate"]
    assert "promoted past its gates" in activation["reason"]


def test_activating_an_ungated_version_that_is_not_the_champion_is_still_refused(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = tmp_path / "bot.env"
    env.write_text("MODEL=old\n")
    assert main(activate(home, env, "BTCUSDT/logreg/3")) == 2
    assert "gates never ran" in capsys.readouterr().err
    assert env.read_text() == "MODEL=old\n"
