"""The gate policy through the CLI a user runs: a lenient ``--policy`` file records a pass that
does not clear; only the registry's policy in force does, and changing it is audited."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from tests.gates.conftest import Market, sound_job

from alphaops.cli import main
from alphaops.core.config import load_config
from alphaops.core.home import AlphaOpsHome
from alphaops.gates import GatePolicy
from alphaops.registry import open_registry
from alphaops.services.data import open_store
from alphaops.training import publish_trained, train_job

LOOSEST = {
    "quality": {
        "min_rows": 1,
        "max_majority_share": 1.0,
        "min_confidence_std": 0.0,
        "min_confidence_p10_p90": 0.0,
        "max_hold_share": 1.0,
        "min_dead_zone_share": 1.0,
    },
    "validation": {
        "min_accuracy": 0.0,
        "min_balanced_accuracy_lift": -1.0,
        "max_log_loss_ratio": 100.0,
        "max_brier_ratio": 100.0,
    },
    "backtest": {"max_drawdown": 1.0, "min_net_return": None, "min_psr": None, "min_dsr": None},
}


def cli(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--home", str(home), *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def home(tmp_path: Path, market: Market) -> Path:
    config = load_config(environ={}, home=tmp_path / "home")
    open_store(config).write(market.candles)
    with open_registry(AlphaOpsHome(config.home).ensure()) as registry:
        publish_trained(train_job(sound_job(), {"BTCUSDT": market.train}), registry)
    return config.home


def test_a_lenient_policy_file_records_a_pass_that_does_not_clear_until_it_is_the_registrys(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lenient = tmp_path / "lenient.yaml"
    lenient.write_text(yaml.safe_dump(LOOSEST))
    ref = "BTCUSDT/lightgbm/1"

    code, out, _ = cli(capsys, home, "gate", "run", ref, "--policy", str(lenient), "--json")
    result = json.loads(out)
    assert (code, result["passed"]) == (0, True), [
        c for g in result["gates"] for c in g["checks"] if not c["passed"]
    ]
    assert result["policy_in_force"] is False
    assert result["cleared"] is False
    assert "not the registry's gate policy" in result["clearance"]
    assert result["policy_hash"] == GatePolicy.from_dict(LOOSEST).policy_hash

    # The first recorded run fixed the registry's policy to the defaults, not to the file.
    code, out, _ = cli(capsys, home, "gate", "policy", "show", "--json")
    shown = json.loads(out)
    assert shown["policy_hash"] == GatePolicy().policy_hash
    assert "alphaops default gate policy" in shown["set"]

    code, _, err = cli(
        capsys, home, "registry", "promote", ref, "--expect", "none", "--reason", "x"
    )
    assert code == 2
    assert "not the registry's gate policy" in err

    code, out, err = cli(
        capsys, home, "gate", "policy", "set", str(lenient), "--reason", "research registry"
    )
    assert code == 0, err
    code, out, _ = cli(capsys, home, "gate", "policy", "history", "--json")
    history = json.loads(out)
    assert [h["reason"] for h in history][1:] == ["research registry"]
    assert history[-1]["policy_hash"] == GatePolicy.from_dict(LOOSEST).policy_hash

    # The run judged under the policy now in force clears the version.
    code, _, err = cli(
        capsys, home, "registry", "promote", ref, "--expect", "none", "--reason", "ok"
    )
    assert code == 0, err


def test_gate_run_without_a_policy_judges_under_the_registrys_policy_in_force(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lenient = tmp_path / "lenient.yaml"
    lenient.write_text(yaml.safe_dump(LOOSEST))
    code, _, err = cli(capsys, home, "gate", "policy", "set", str(lenient), "--reason", "lab")
    assert code == 0, err
    code, out, _ = cli(capsys, home, "gate", "run", "BTCUSDT/lightgbm/1", "--json")
    result = json.loads(out)
    assert result["policy_hash"] == GatePolicy.from_dict(LOOSEST).policy_hash
    assert result["policy_in_force"] is True
    assert result["cleared"] is result["passed"] is True
    code, out, _ = cli(capsys, home, "gate", "run", "BTCUSDT/lightgbm/1")
    assert "cleared for live traffic: yes" in out


def test_the_demo_policy_goes_only_into_a_registry_whose_gates_never_ran(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from alphaops.services.gates import apply_demo_policy, demo_policy

    # The file users read and the one the package ships are the same policy.
    docs = Path(__file__).resolve().parents[2] / "docs" / "examples" / "gates-demo.yaml"
    assert GatePolicy.from_file(docs) == demo_policy()
    config = load_config(environ={}, home=home)
    first = apply_demo_policy(config, reason="demo")
    assert (first.policy_hash, first.reason) == (demo_policy().policy_hash, "demo")
    # A registry with a policy in force keeps it: a person's, or alphaops' defaults.
    strict = tmp_path / "strict.yaml"
    strict.write_text(yaml.safe_dump({"backtest": {"max_drawdown": 0.2}}))
    code, _, err = cli(capsys, home, "gate", "policy", "set", str(strict), "--reason", "desk")
    assert code == 0, err
    kept = apply_demo_policy(config, reason="demo again")
    assert kept.reason == "desk"
    other = load_config(environ={}, home=tmp_path / "other")
    with open_registry(AlphaOpsHome(other.home).ensure()) as registry:
        ensure = registry.set_gate_policy(GatePolicy().to_dict(), reason="alphaops default")
    assert apply_demo_policy(other, reason="demo") == ensure
