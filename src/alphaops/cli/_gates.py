"""``alphaops gate quality|run REF`` and ``alphaops scoreboard SYMBOL``.

Gates fail closed: exit 0 when every gate passed, 2 when one failed (a blocker), 1 on a usage
or runtime error. ``--json`` prints the machine-readable result in every case.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from alphaops.cli._context import CliContext, get_context
from alphaops.cli._render import Records, print_records

if TYPE_CHECKING:  # imported in the commands: `alphaops -h` must not load the gates (scipy)
    from alphaops.gates import GateOutcome, GatePolicy
    from alphaops.gates.scoreboard import Scoreboard
    from alphaops.services import gates as svc

__all__ = ["app", "scoreboard"]

app = typer.Typer(
    help="Block degenerate and worse models before they trade (exit 0 pass, 2 fail).",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
WindowOpt = Annotated[
    str | None,
    typer.Option(
        "--window",
        help="START..END (UTC dates) (default: after the model's training data)",
    ),
]
PolicyOpt = Annotated[
    Path | None,
    typer.Option(
        "--policy",
        help="YAML/JSON gate policy (default: the registry's policy). A run under another "
        "policy is recorded but does not clear the version for live traffic.",
    ),
]

policy_app = typer.Typer(
    help="The registry's gate policy: the one a passed run must be judged under to clear.",
    no_args_is_help=True,
)
app.add_typer(policy_app, name="policy")


def _policy(path: Path | None) -> GatePolicy | None:
    from alphaops.gates import GatePolicy

    return GatePolicy.from_file(path) if path is not None else None


def _outcome_table(outcome: GateOutcome) -> Table:
    verdict = "[green]PASS[/]" if outcome.passed else "[red]FAIL[/]"
    table = Table("check", "value", "threshold", "verdict", "explanation", title=None)
    table.title = f"{outcome.gate}: {verdict} — {outcome.summary}"
    for c in outcome.checks:
        threshold = "" if c.threshold is None else f"{c.comparison} {c.threshold:.4g}"
        table.add_row(
            c.name,
            "n/a" if c.value is None else f"{c.value:.4g}",
            threshold,
            "[green]PASS[/]" if c.passed else "[red]FAIL[/]",
            c.explanation,
        )
    return table


@app.command("quality")
def quality(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="SYMBOL/TYPE/VERSION or SYMBOL/TYPE@alias")],
    window: WindowOpt = None,
    policy: PolicyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the degenerate-output gate on an out-of-sample window (exit 2 on failure)."""
    from alphaops.services import gates as svc

    cli = get_context(ctx)
    version, outcome = svc.gate_quality(cli.config, ref, window=window, policy=_policy(policy))
    if as_json:
        cli.print_json({"ref": version.ref, **outcome.model_dump(mode="json")})
    else:
        cli.console.print(_outcome_table(outcome))
    if not outcome.passed:
        raise typer.Exit(2)


@app.command("run")
def run(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="SYMBOL/TYPE/VERSION or SYMBOL/TYPE@alias")],
    champion: Annotated[
        str,
        typer.Option(help="Champion to compare with: a reference, 'auto' or 'none'."),
    ] = "auto",
    window: WindowOpt = None,
    policy: PolicyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run every gate, record the result for the version, write reports (exit 2 on failure)."""
    from alphaops.services import gates as svc

    cli = get_context(ctx)
    summary = svc.gate_run(
        cli.config,
        ref,
        champion=None if champion.lower() == "none" else champion,
        window=window,
        policy=_policy(policy),
    )
    record = summary.run.record
    if as_json:
        cli.print_json(
            record.model_dump(mode="json")
            | {
                "cleared": summary.cleared,
                "clearance": summary.clearance,
                "policy_in_force": summary.policy_in_force,
                "reports": {k: str(v) for k, v in summary.reports.items()},
                "gate_run": {
                    "id": summary.recorded.run_id,
                    "attached_at": summary.recorded.location,
                    "attachments": [a.name for a in summary.recorded.attachments],
                },
            }
        )
    else:
        _print_run(cli, summary)
    if not summary.passed:
        raise typer.Exit(2)


def _print_run(cli: CliContext, summary: svc.GateRunSummary) -> None:
    record = summary.run.record
    for outcome in record.gates:
        cli.console.print(_outcome_table(outcome))
    verdict = "[green]PASS[/]" if record.passed else "[red]FAIL[/]"
    cli.console.print(f"{record.ref}: {verdict}  champion: {record.champion or 'none'}")
    if not summary.policy_in_force:
        cli.console.print(
            "[yellow]judged under a policy other than the registry's[/] "
            f"({record.policy_hash[:12]}…): this run does not clear it for live traffic",
            highlight=False,
        )
    cleared = "[green]yes[/]" if summary.cleared else f"[red]no[/] — {summary.clearance}"
    cli.console.print(f"cleared for live traffic: {cleared}", highlight=False)
    for path in summary.reports.values():
        cli.console.print(f"report: {path}")
    cli.console.print(
        f"recorded as gate run {summary.recorded.run_id}; reports attached at "
        f"{summary.recorded.location}",
        highlight=False,
    )


def scoreboard(
    ctx: typer.Context,
    symbol: Annotated[str, typer.Argument(help="Symbol, e.g. BTCUSDT")],
    window: WindowOpt = None,
    bars: Annotated[int, typer.Option(help="Window length when --window is not given.")] = 1500,
    as_json: JsonOpt = False,
) -> None:
    """Show every model of a symbol side by side: actions, confidence, agreement, GO/WAIT/NO-GO."""
    from alphaops.services import gates as svc

    cli = get_context(ctx)
    board, path = svc.scoreboard(cli.config, symbol, window=window, bars=bars)
    if as_json:
        cli.print_json(board.to_dict() | {"path": str(path)})
        return
    print_records(cli.console, scoreboard_table(board))
    cli.console.print(f"window: {board.window}\nwritten: {path}", highlight=False, soft_wrap=True)


def scoreboard_table(board: Scoreboard) -> Records:
    """Return the scoreboard's records: one per model, GO/WAIT/NO-GO with the reason."""
    columns = (
        "model",
        "role",
        "SELL",
        "HOLD",
        "BUY",
        "conf std",
        "P10–P90",
        "agree",
        "hard",
        "gates",
        "status",
        "why",
    )
    title = f"{board.symbol} — champion {board.champion or 'none'}"
    table = Records(columns, title=title, wrap={"why"})
    for r in board.to_dict()["rows"]:
        shares = r["shares"]
        table.add_row(
            r["ref"],
            r["role"],
            *(_pct(shares[a]) for a in ("SELL", "HOLD", "BUY")),
            "—" if r["confidence_std"] is None else f"{r['confidence_std']:.3f}",
            "—"
            if r["confidence_p10"] is None
            else f"{r['confidence_p10']:.2f}–{r['confidence_p90']:.2f}",
            _pct(r["agreement"]),
            _pct(r["hard_disagreement"]),
            r["gates"],
            r["status"],
            r["reason"],
        )
    return table


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


@policy_app.command("show")
def policy_show(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Print the gate policy in force, its hash, and who set it when and why."""
    import yaml

    from alphaops.gates import GatePolicy
    from alphaops.services import gates as svc

    cli = get_context(ctx)
    history = svc.gate_policy_history(cli.config)
    current = history[-1] if history else None
    document = GatePolicy().to_dict() if current is None else current.document
    policy_hash = GatePolicy().policy_hash if current is None else current.policy_hash
    where = (
        "alphaops defaults (no gate run recorded yet: the first one sets them)"
        if current is None
        else f"set {current.created_at:%Y-%m-%d %H:%M} UTC by {current.actor}: {current.reason}"
    )
    if as_json:
        cli.print_json({"policy_hash": policy_hash, "set": where, "policy": document})
        return
    cli.console.print(f"policy {policy_hash[:16]}…  {where}", highlight=False, soft_wrap=True)
    cli.console.print(yaml.safe_dump(document, sort_keys=False).rstrip(), markup=False)


@policy_app.command("set")
def policy_set(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="YAML/JSON gate policy (missing keys: defaults).")],
    reason: Annotated[str, typer.Option("--reason", help="Why the gates change (required).")],
    as_json: JsonOpt = False,
) -> None:
    """Make a policy file the registry's gate policy (versions must be gated under it again)."""
    from alphaops.gates import GatePolicy
    from alphaops.services import gates as svc

    cli = get_context(ctx)
    record = svc.set_gate_policy(cli.config, GatePolicy.from_file(path), reason=reason)
    if as_json:
        cli.print_json({"policy_hash": record.policy_hash, "reason": record.reason})
        return
    cli.console.print(
        f"gate policy {record.policy_hash[:16]}… in force; versions gated under an earlier "
        "policy must be gated again before they can go live",
        highlight=False,
    )


@policy_app.command("history")
def policy_history(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List every setting of the gate policy, oldest first (the last is in force)."""
    from alphaops.services import gates as svc

    cli = get_context(ctx)
    history = svc.gate_policy_history(cli.config)
    if as_json:
        cli.print_json(
            [
                {
                    "policy_hash": r.policy_hash,
                    "set_at": r.created_at.isoformat(),
                    "actor": r.actor,
                    "host": r.host,
                    "reason": r.reason,
                }
                for r in history
            ]
        )
        return
    table = Records(("set at", "policy", "by", "reason"), wrap={"reason"})
    for r in history:
        table.add_row(f"{r.created_at:%Y-%m-%d %H:%M}", r.policy_hash[:12], r.actor, r.reason)
    print_records(cli.console, table)
