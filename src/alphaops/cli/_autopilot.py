"""``alphaops autopilot …``: retrain on schedule and in emergencies, through gates and rollouts.

Exit codes: ``status`` exits 2 when a model needs a person (an emergency retrain found no
candidate that passed its gates, or bots are holding); ``run`` exits 130 on Ctrl-C and 143 on
SIGTERM after the running step ended cleanly.
"""

from __future__ import annotations

import textwrap
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from alphaops.cli._context import get_context

if TYPE_CHECKING:  # imported in the commands: `alphaops -h` must not load pandas or scipy
    from alphaops.autopilot import ModelStatus, Run

__all__ = ["app", "replay"]

app = typer.Typer(
    help="Retrain on schedule and in emergencies; every candidate goes through gates and a "
    "rollout, never straight to live.",
    no_args_is_help=True,
)

PolicyOpt = Annotated[
    Path, typer.Option("--policy", help="Autopilot policy YAML (see docs/examples/autopilot.yaml).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ExecutorOpt = Annotated[
    str,
    typer.Option(help="Where training runs: process (a child process), sequential or ray."),
]


def _wrap(head: str, text: str, indent: int) -> list[str]:
    # Fit 80 columns without cutting: words (refs, paths) are never broken, only moved.
    return textwrap.wrap(
        head + text,
        width=80,
        subsequent_indent=" " * indent,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [head.rstrip()]


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M} UTC"


def run_lines(run: Run) -> list[str]:
    """Return a run as lines that fit 80 columns (nothing is cut; long reasons wrap)."""
    lines = [f"{run.key}  {run.kind} run {run.run_id}  fired {_when(run.started)}"]
    for step in run.steps:
        version = "" if step.version is None else f" v{step.version}"
        lines += _wrap(f"  {step.step}{version}: ", step.reason, 4)
    return lines


def status_lines(status: ModelStatus) -> list[str]:
    """Return one model's status as key: value lines."""
    last = status.last_run
    lines = [
        f"{status.key}  {'ok' if status.healthy else 'NEEDS ATTENTION'}",
        f"  champion:       {'-' if status.champion is None else f'v{status.champion}'}",
        f"  next scheduled: {_when(status.next_scheduled)}",
        f"  cooldown until: {_when(status.cooldown_until)}",
        f"  last run:       {'-' if last is None else f'{last.kind}, {_when(last.started)}'}",
    ]
    if last is not None:
        lines += _wrap("  ended:          ", last.outcome, 18)
    if status.alarm:
        lines += _wrap("  alarm:          ", status.alarm, 18)
    return lines


def _print(ctx: typer.Context, lines: list[str]) -> None:
    cli = get_context(ctx)
    for line in lines:
        cli.console.print(line, highlight=False, markup=False, soft_wrap=True)


@app.command("validate")
def validate(
    ctx: typer.Context, policy: Annotated[Path, typer.Argument(help="Policy YAML.")]
) -> None:
    """Check a policy file: every key known, every value valid."""
    from alphaops.services.autopilot import load_policy

    loaded = load_policy(policy)
    _print(
        ctx,
        [
            f"{policy}: ok, {len(loaded.models)} model(s): "
            + ", ".join(str(m.key) for m in loaded.models)
        ],
    )


@app.command("run")
def run(
    ctx: typer.Context,
    policy: PolicyOpt,
    executor: ExecutorOpt = "process",
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster address.")] = None,
) -> None:
    """Run as a service until Ctrl-C or SIGTERM (the running step ends cleanly)."""
    from alphaops.services.autopilot import load_policy, run_autopilot

    loaded = load_policy(policy)
    cli = get_context(ctx)
    cli.err.print(
        f"autopilot: {len(loaded.models)} model(s), checking every {loaded.check_every:g}s; "
        "Ctrl-C or SIGTERM stops it",
        highlight=False,
    )

    def report(runs: list[Run]) -> None:
        for r in runs:
            _print(ctx, run_lines(r))

    def failed(exc: BaseException) -> None:
        # A check that failed is retried at the next one; say so, never silently.
        cli.err.print(f"autopilot: a check failed and is retried: {exc}", highlight=False)

    run_autopilot(
        cli.config,
        loaded,
        executor=executor,
        ray_address=ray_address,
        on_runs=report,
        on_error=failed,
    )


@app.command("once")
def once(
    ctx: typer.Context,
    policy: PolicyOpt,
    at: Annotated[
        str | None, typer.Option(help="Act as if it were this time (ISO, UTC); default now.")
    ] = None,
    executor: ExecutorOpt = "process",
    as_json: JsonOpt = False,
) -> None:
    """Run one check now: retrain what is due, then exit (for cron and drills)."""
    from alphaops.services.autopilot import autopilot_check, load_policy, run_to_dict
    from alphaops.services.data import parse_utc

    cli = get_context(ctx)
    now = None if at is None else parse_utc(at, "--at").to_pydatetime()
    runs = autopilot_check(cli.config, load_policy(policy), now=now, executor=executor)
    if as_json:
        cli.print_json([run_to_dict(r) for r in runs])
        return
    lines = [line for r in runs for line in run_lines(r)]
    _print(ctx, lines or ["nothing was due"])


@app.command("status")
def status(ctx: typer.Context, policy: PolicyOpt, as_json: JsonOpt = False) -> None:
    """Where every model stands; exit 2 when one needs a person."""
    from alphaops.services.autopilot import autopilot_status, load_policy, status_to_dict

    cli = get_context(ctx)
    states = autopilot_status(cli.config, load_policy(policy))
    if as_json:
        cli.print_json([status_to_dict(s) for s in states])
    else:
        _print(ctx, [line for s in states for line in status_lines(s)])
    if not all(s.healthy for s in states):
        raise typer.Exit(2)


@app.command("history")
def history(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Argument(help="SYMBOL/TYPE (default: all)")] = None,
    last: Annotated[int, typer.Option(help="Only the newest N runs.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """What fired, when, why, what it produced and where it ended."""
    from alphaops.services.autopilot import autopilot_history, run_to_dict

    cli = get_context(ctx)
    runs = autopilot_history(cli.config, model, last=last)
    if as_json:
        cli.print_json([run_to_dict(r) for r in runs])
        return
    _print(ctx, [line for r in runs for line in run_lines(r)] or ["no autopilot run yet"])


def replay(
    ctx: typer.Context,
    policy: Annotated[
        Path | None,
        typer.Option("--policy", help="Autopilot policy YAML (see docs/examples/autopilot.yaml)."),
    ] = None,
    start: Annotated[
        str | None, typer.Option("--from", help="First simulated moment (ISO, UTC).")
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="End of the replay (ISO, UTC).")] = None,
    sample: Annotated[
        bool,
        typer.Option(
            "--sample",
            help="Replay the bundled sample (BTC/ETH/SOL 1h) with the bundled policy, "
            "2024-10-15..2025-07-01, importing it into the home first.",
        ),
    ] = False,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write an HTML report with plots here.")
    ] = None,
    crash_at: Annotated[
        list[str] | None,
        typer.Option("--crash-at", help="Fault: crash the first retrain at/after this time."),
    ] = None,
    gap: Annotated[
        str | None, typer.Option("--gap", help="Fault: candles START..END are missing.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Replay stored candles with the autopilot on: retrains, gates, rollouts, fills.

    Run it in a home of its own (--home): it trains, publishes and journals there.
    """
    from rich.progress import Progress

    from alphaops.autopilot.replay import Faults
    from alphaops.core.errors import UsageError
    from alphaops.services.autopilot import load_policy
    from alphaops.services.data import parse_utc
    from alphaops.services.gates import parse_window
    from alphaops.services.lifecycle import (
        lifecycle_lines,
        run_replay,
        sample_setup,
        write_lifecycle_html,
    )
    from alphaops.training import CancelToken
    from alphaops.training._control import interrupts_cancel

    cli = get_context(ctx)
    if sample:
        loaded, first, last = sample_setup(cli.config)
    elif policy is None or start is None or end is None:
        raise UsageError(
            "replay needs --policy, --from and --to (or --sample)",
            fix="e.g. alphaops replay --policy autopilot.yaml --from 2025-01-01 --to 2025-07-01",
        )
    else:
        loaded = load_policy(policy)
        first = parse_utc(start, "--from").to_pydatetime()
        last = parse_utc(end, "--to").to_pydatetime()
    if sample and start is not None:
        first = parse_utc(start, "--from").to_pydatetime()
    if sample and end is not None:
        last = parse_utc(end, "--to").to_pydatetime()
    faults = Faults(
        training_crash_at=tuple(
            parse_utc(c, "--crash-at").to_pydatetime() for c in (crash_at or [])
        ),
        data_gap=None if gap is None else _gap(parse_window(gap), gap),
    )
    token = CancelToken()
    with Progress(console=cli.err, transient=True) as bar, interrupts_cancel(token):
        task = bar.add_task("replaying", total=None)
        result = run_replay(
            cli.config,
            loaded,
            start=first,
            end=last,
            faults=faults,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            cancelled=lambda: token.cancelled,
        )
    runs = [line for r in result.runs for line in run_lines(r)]
    if html is not None:
        write_lifecycle_html(html, result, runs)
    if as_json:
        cli.print_json(
            {
                "bars": result.bars,
                "seconds": round(result.seconds, 3),
                "retrains": result.retrains,
                "runs": result.counts,
                "promotions": result.promotions,
                "rollbacks": result.rollbacks,
                "drift_alarms": result.drift_alarms,
                "models": [
                    {
                        "model": str(m.key),
                        "return": float(m.equity[-1] - 1),
                        "first_champion_return": None
                        if m.first_champion is None
                        else float(m.first_champion[-1] - 1),
                        "buy_and_hold_return": float(m.buy_and_hold[-1] - 1),
                        "trades": m.trades,
                        "served": m.served,
                    }
                    for m in result.models
                ],
            }
        )
        return
    _print(ctx, lifecycle_lines(result))
    if html is not None:
        _print(ctx, ["", f"report: {html}"])


def _gap(bounds: tuple[int | None, int | None], text: str) -> tuple[datetime, datetime]:
    from datetime import UTC

    from alphaops.core.errors import UsageError

    first, last = bounds
    if first is None or last is None or first >= last:
        raise UsageError(
            f"--gap {text!r} needs both ends, start first", fix="e.g. 2025-03-01..2025-03-04"
        )
    return datetime.fromtimestamp(first / 1000, UTC), datetime.fromtimestamp(last / 1000, UTC)
