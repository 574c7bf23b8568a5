"""Output that fits: refs, paths and verdicts are never cut, at 80 columns or piped.

A terminal wide enough gets a table; a narrow one (``COLUMNS=80``) gets ``field: value``
blocks; output that is not a terminal (a pipe, a file, CI) gets plain tab-separated lines.
``TTY_COMPATIBLE=1`` makes Rich treat the captured output as a terminal.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console

from alphaops.cli import main
from alphaops.cli._gates import scoreboard_table
from alphaops.cli._quickstart import _render_replay
from alphaops.cli._render import Records, print_records, verdict
from alphaops.gates.scoreboard import Scoreboard, ScoreboardRow
from alphaops.registry import open_registry
from alphaops.registry.testing import build_tiny_bundle, publish_cleared
from alphaops.services.replay import ReplayInterval, ReplayResult

ANSI = re.compile(r"\x1b\[[0-9;]*m")
BOX = re.compile(r"[┃│┏┡└━]")  # a table's box (a rule's ─ is no table)
SYMBOL = "AVERYLONGSYMBOLNAMEUSDT"  # long refs are what a narrow table used to cut
MODEL = f"{SYMBOL}/logreg"
REASON = "the challenger beat the champion on six weeks of out-of-sample bars, see the report"


@pytest.fixture
def home(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """Two cleared versions of a long-named model; v1 champion; v2 in a canary rollout."""
    root = tmp_path / "home"
    with open_registry(root) as registry:
        for seed in (1, 2):
            publish_cleared(
                registry, build_tiny_bundle(tmp_path / f"b{seed}", symbol=SYMBOL, seed=seed)
            )
    for args in (
        ["registry", "promote", f"{MODEL}/1", "--expect", "none", "--reason", REASON],
        ["rollout", "start", f"{MODEL}/2", "--steps", "10,50,100", "--reason", REASON],
    ):
        assert main(["--home", str(root), *args]) == 0, capsys.readouterr().err
    capsys.readouterr()
    return str(root)


def _run(capsys: pytest.CaptureFixture[str], home: str, *args: str) -> str:
    assert main(["--home", home, *args]) == 0
    out, _err = capsys.readouterr()
    return ANSI.sub("", out)


COMMANDS = {
    "registry list": ("registry", "list"),
    "registry history": ("registry", "history", MODEL),
    "rollout status": ("rollout", "status"),
}
WHOLE = {
    "registry list": [MODEL, "PASS", "champion", "challenger"],
    "registry history": [REASON, "promote", "alias_set"],
    "rollout status": [MODEL, "10% → 50% → 100%", "canary"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_at_80_columns_a_terminal_gets_field_value_blocks_with_nothing_cut(
    command: str, home: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("COLUMNS", "80")
    out = _run(capsys, home, *COMMANDS[command])
    assert not BOX.search(out), out  # no table: it would not fit
    assert "…" not in out
    lines = out.splitlines()
    for whole in WHOLE[command]:
        assert any(whole in line for line in lines), (whole, out)
    assert any(re.match(r"\w[\w ]*\s*: ", line) for line in lines)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_wide_terminal_still_gets_a_table(
    command: str, home: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("COLUMNS", "250")
    out = _run(capsys, home, *COMMANDS[command])
    assert BOX.search(out), out
    assert "…" not in out
    for whole in WHOLE[command]:
        if command != "registry history":  # the reason column may wrap at spaces
            assert whole in out, (whole, out)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_piped_output_is_plain_tab_separated_text(
    command: str, home: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["--home", home, *COMMANDS[command]]) == 0
    out = capsys.readouterr().out
    assert not ANSI.search(out)
    assert not BOX.search(out)
    header, *rows = out.splitlines()
    assert "\t" in header
    assert rows
    assert all(row.count("\t") == header.count("\t") for row in rows)
    for whole in WHOLE[command]:
        assert whole in out


def _consoles(width: int) -> tuple[Console, io.StringIO]:
    file = io.StringIO()
    return Console(file=file, width=width, force_terminal=True, color_system=None), file


BOARD = Scoreboard(
    symbol=SYMBOL,
    champion=f"{MODEL}/1",
    window="2025-04-29T12:00:00+00:00 → 2025-06-30T23:00:00+00:00",
    rows=[
        ScoreboardRow(f"{MODEL}/1", "champion", 1464, {"SELL": 0.18, "HOLD": 0.68, "BUY": 0.14},
                      0.09, 0.39, 0.62, None, None, "PASS", "CHAMPION", "live model"),
        ScoreboardRow(f"{MODEL}/12", "candidate", 1464, {"SELL": 0.17, "HOLD": 0.69, "BUY": 0.14},
                      0.089, 0.38, 0.61, 0.89, 0.02, "FAIL", "NO-GO",
                      "failed quality.majority_share, validation.balanced_accuracy"),
    ],
)  # fmt: skip


@pytest.mark.parametrize("width", [80, 100])
def test_the_scoreboard_at_a_narrow_width_keeps_every_ref_status_and_reason_whole(
    width: int,
) -> None:
    console, file = _consoles(width)
    print_records(console, scoreboard_table(BOARD))
    out = file.getvalue()
    assert not BOX.search(out)
    for whole in (f"{MODEL}/1", f"{MODEL}/12", "NO-GO", "CHAMPION", "FAIL",
                  "failed quality.majority_share, validation.balanced_accuracy"):  # fmt: skip
        assert any(whole in line for line in out.splitlines()), (whole, out)


def test_the_quickstart_replay_table_keeps_refs_whole_at_80_columns_and_piped() -> None:
    replay = ReplayResult(
        challenger=f"{MODEL}/2",
        intervals=[
            ReplayInterval("shadow", 0, "2025-05-01T00:00:00+00:00", 24, {f"{MODEL}/1": 24},
                           24, 0.9, 0.55, "pass", "", "canary"),
            ReplayInterval("canary", 10, "2025-05-02T00:00:00+00:00", 24,
                           {f"{MODEL}/1": 21, f"{MODEL}/2": 3}, 24, 0.88, None, "pass", "", "live"),
        ],
        final_phase="live",
    )  # fmt: skip
    console, file = _consoles(80)
    _render_replay(console, replay)
    narrow = file.getvalue()
    assert not BOX.search(narrow)
    assert f"{MODEL}/1 × 21, {MODEL}/2 × 3" in narrow
    piped_file = io.StringIO()
    _render_replay(Console(file=piped_file, width=80), replay)
    piped = piped_file.getvalue()
    assert not BOX.search(piped)
    assert f"{MODEL}/1 × 21, {MODEL}/2 × 3\t" in piped


def test_records_refuse_a_row_with_the_wrong_number_of_cells_and_verdicts_colour() -> None:
    records = Records(("a", "b"))
    with pytest.raises(ValueError, match="1 cells for 2 columns"):
        records.add_row("x")
    assert verdict(True).plain == "PASS"
    assert str(verdict(False).style) == "red"
    assert verdict(None).plain == "—"
