"""``alphaops quickstart``: the main job on the bundled real sample data."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import Progress

from alphaops.cli._context import get_context
from alphaops.cli._dataset import render_dataset
from alphaops.cli._gates import scoreboard_table
from alphaops.cli._render import Records, print_records, verdict
from alphaops.cli._train import TrainingBars, render_summary

if TYPE_CHECKING:  # imported in the command: `alphaops -h` must not load the whole library
    from alphaops.services.quickstart import QuickstartResult
    from alphaops.services.replay import ReplayResult


def quickstart(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Run the lifecycle on the bundled sample: data, dataset, train, gate, promote."""
    from alphaops.services.quickstart import HOLDOUT_START, RULE, SYMBOL, run_quickstart
    from alphaops.services.training import quickstart_jobs

    cli = get_context(ctx)
    jobs = quickstart_jobs(SYMBOL, label=RULE, end=HOLDOUT_START)
    with Progress(*TrainingBars.COLUMNS, console=cli.err, disable=as_json) as bars:
        stage = bars.add_task("[bold]quickstart", total=None, status="")
        ui = TrainingBars(bars, [f"train {j.registry_symbol} {j.model}" for j in jobs])
        result = run_quickstart(
            cli.config,
            step=lambda text: bars.update(stage, status=text),
            progress=ui.on_progress,
            on_done=ui.on_done,
        )
        bars.update(stage, total=1, completed=1, status="done")
    if as_json:
        cli.print_json(_to_dict(cli.config.home, result))
        return
    _render(cli.console, str(cli.config.home), result)


def _to_dict(home: object, result: QuickstartResult) -> dict[str, object]:
    return {
        "home": str(home),
        "imported": result.imported,
        "store": [e.to_dict() for e in result.entries],
        "checks": [r.to_dict() for r in result.checks],
        "dataset": {
            "npz": str(result.files.npz),
            "report": str(result.files.report),
            "plots": {kind: str(path) for kind, path in result.files.plots.items()},
            "shape": list(result.dataset.shape),
            "class_counts": result.dataset.class_counts(),
        },
        "training": result.training.to_dict(),
        "gates": [
            {
                "ref": a.outcome.ref,
                "passed": a.passed,
                "why_not": a.why_not(),
                "reports": {k: str(v) for k, v in (a.summary.reports if a.summary else {}).items()},
            }
            for a in result.gates
        ],
        "scoreboard": result.board.to_dict(),
        "promoted": None if result.promotion is None else result.promotion.to_version,
        "promotion_note": result.promotion_note,
        "gate_policy": {
            "policy_hash": result.gate_policy.policy_hash,
            "reason": result.gate_policy.reason,
        },
        "replay": None
        if result.replay is None
        else {
            "challenger": result.replay.challenger,
            "final_phase": result.replay.final_phase,
            "served": result.replay.served,
            "intervals": [asdict(i) for i in result.replay.intervals],
            "decisions": result.replay.decisions,
            "fills": result.replay.fills,
            "round_trips": result.replay.round_trips,
        },
        "performance": None if result.performance is None else result.performance.to_dict(),
        "drift": None if result.drift is None else result.drift.to_dict(),
        "versions": [v.ref for v in result.versions],
        "history": [
            {"model": r.key, "alias": r.alias, "from": r.from_version, "to": r.to_version}
            for r in result.history
        ],
    }


def _render_replay(console: Console, replay: ReplayResult) -> None:
    console.rule(f"live replay — rollout of {replay.challenger}")
    columns = (
        "from bar (UTC)",
        "phase",
        "bars",
        "served by",
        "challenger saw",
        "agree",
        "hit rate",
        "verdict",
        "then",
    )
    table = Records(columns, wrap={"served by", "then"})
    for i in replay.intervals:
        phase = i.phase if i.phase != "canary" else f"canary {i.percentage}%"
        served = ", ".join(f"{ref} × {n}" for ref, n in sorted(i.served.items()))
        hit = "—" if i.hit_rate is None else f"{i.hit_rate:.0%}"
        agree = f"{i.agreement:.0%}" if i.challenger_predictions else "—"
        table.add_row(
            i.first_bar[:16],
            phase,
            str(i.bars),
            served,
            str(i.challenger_predictions),
            agree,
            hit,
            i.verdict,
            i.phase_after or i.detail,
        )
    print_records(console, table)
    served = ", ".join(f"{ref} served {n} bars" for ref, n in sorted(replay.served.items()))
    console.print(f"[bold]rollout[/]: ended {replay.final_phase}; {served}")
    console.print(
        f"[bold]journal[/]: {replay.decisions} decisions, {replay.fills} simulated fills, "
        f"{replay.round_trips} round trips"
    )


def _render(console: Console, home: str, result: QuickstartResult) -> None:
    from alphaops.services.journal_report import monitor_lines, performance_lines

    console.rule(f"alphaops quickstart — home {home}")
    columns = ("symbol", "tf", "candles", "first", "last", "added now", "gaps", "check")
    table = Records(columns)
    checks = {(r.symbol, str(r.timeframe)): r for r in result.checks}
    for e in result.entries:
        check = checks.get((e.symbol, str(e.timeframe)))
        ok = verdict(None if check is None else check.ok, "OK", "FAILED")
        table.add_row(
            e.symbol,
            str(e.timeframe),
            f"{e.rows:,}",
            f"{e.first:%Y-%m-%d}",
            f"{e.last:%Y-%m-%d}",
            f"{result.imported.get(e.symbol, 0):,}",
            f"{e.gaps}",
            ok,
        )
    print_records(console, table)
    render_dataset(console, result.dataset, result.files)
    console.rule("training → candidates")
    render_summary(console, result.training)
    console.rule("gates")
    console.print(
        f"[bold]gate policy[/] {result.gate_policy.policy_hash[:12]}…: "
        f"{result.gate_policy.reason} (alphaops gate policy show)",
        highlight=False,
    )
    gates = Records(("candidate", "verdict", "why", "report"), wrap={"why"})
    for a in result.gates:
        report = a.summary.reports.get("html", "") if a.summary else ""
        gates.add_row(
            a.outcome.ref or "", verdict(a.passed), a.why_not() or "every check passed", str(report)
        )
    print_records(console, gates)
    print_records(console, scoreboard_table(result.board))
    console.print(f"[bold]promotion[/]: {result.promotion_note}")
    if result.replay is not None:
        _render_replay(console, result.replay)
    if result.performance is not None:
        console.rule("live vs backtest, from the journal")
        for line in performance_lines(result.performance)[1:]:
            console.print(line, highlight=False, markup=False)
    if result.drift is not None:
        console.rule(f"drift of {result.drift.ref}")
        for line in monitor_lines(result.drift)[:-1]:
            if line.startswith(result.drift.ref):  # the performance block was printed above
                break
            console.print(line, highlight=False, markup=False)
    console.rule("registry")
    versions = Records(("version", "created"))
    for v in result.versions:
        versions.add_row(v.ref, f"{v.created_at:%Y-%m-%d %H:%M:%S}")
    print_records(console, versions)
    history = Records(("model", "alias", "from", "to", "reason"), wrap={"reason"})
    for r in result.history:
        history.add_row(str(r.key), r.alias or "", str(r.from_version), str(r.to_version), r.reason)
    print_records(console, history)
