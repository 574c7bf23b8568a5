"""``alphaops train``: train models per symbol (or pooled), publish them as candidates.

``alphaops train --symbols BTCUSDT,ETHUSDT --model lightgbm`` trains one model per symbol on a
local process pool (``--executor ray`` for Ray, ``--executor sequential`` for one process),
with one progress bar per job and an overall bar; Ctrl-C (exit 130) or ``SIGTERM`` (exit
143) cancels cleanly: the pool workers stop and nothing more is published. ``alphaops train compare A.yaml B.yaml`` checks a new training
configuration against the current one (exit 2 when a metric differs by more than the
tolerance, like a failed gate).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from alphaops.cli._context import get_context
from alphaops.cli._names import EXECUTORS, MODEL_FAMILIES
from alphaops.core.errors import CancelledError, UsageError

if TYPE_CHECKING:  # imported in the commands: `alphaops -h` must not load pandas or torch
    from alphaops.services.training import TrainingSummary
    from alphaops.training import ProgressUpdate, TrainingJob
    from alphaops.training.compare import Comparison
    from alphaops.training.fanout import JobOutcome

app = typer.Typer(
    help="Train models and publish them as candidate versions.",
    invoke_without_command=True,
)


def _parse_params(values: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError(
                f"--param {item!r} is not KEY=VALUE", fix="write e.g. --param n_estimators=500"
            )
        params[key.strip()] = _scalar(raw.strip())
    return params


def _scalar(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    return text


@app.callback(invoke_without_command=True)
def train(
    ctx: typer.Context,
    symbols: Annotated[
        str | None, typer.Option(help="Comma-separated symbols, e.g. BTCUSDT,ETHUSDT.")
    ] = None,
    model: Annotated[str, typer.Option(help=f"Model: {', '.join(MODEL_FAMILIES)}.")] = "lightgbm",
    timeframe: Annotated[str, typer.Option(help="Candle timeframe.")] = "1h",
    horizon: Annotated[int, typer.Option(help="Label horizon in bars.")] = 4,
    threshold: Annotated[
        float | None,
        typer.Option(
            help="Label threshold: a multiple of σ·√horizon with --label-scale volatility "
            "(default: the balanced one, 0.4307 for ternary); a fraction with --label-scale "
            "fixed (default 0.01 = 1%)."
        ),
    ] = None,
    label_scale: Annotated[
        str,
        typer.Option(
            help="volatility: the barrier follows each bar's recent volatility (classes "
            "balanced on any market); fixed: the same return on every bar."
        ),
    ] = "volatility",
    kind: Annotated[str, typer.Option(help="ternary (SELL/HOLD/BUY) or binary.")] = "ternary",
    lookback: Annotated[int, typer.Option(help="Window bars (lstm, patchtst).")] = 32,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    param: Annotated[
        list[str] | None, typer.Option(help="Model parameter KEY=VALUE (repeatable).")
    ] = None,
    job: Annotated[
        Path | None, typer.Option(help="YAML/JSON training job (instead of the options).")
    ] = None,
    pooled: Annotated[bool, typer.Option(help="One model over all symbols.")] = False,
    start: Annotated[str | None, typer.Option(help="First candle used (UTC).")] = None,
    end: Annotated[str | None, typer.Option(help="Use candles before this time.")] = None,
    executor: Annotated[
        str, typer.Option(help=f"Where jobs run: {', '.join(EXECUTORS)}.")
    ] = "process",
    workers: Annotated[int | None, typer.Option(help="Parallel jobs (default: CPUs).")] = None,
    ray_address: Annotated[
        str | None, typer.Option(help="Ray cluster address (with --executor ray).")
    ] = None,
    min_confidence: Annotated[
        float | None,
        typer.Option(
            help="Decision rule: act only when the chosen class has at least this probability "
            "(default 0.5 ternary, 0.55 binary; 0 = argmax)."
        ),
    ] = None,
    min_hold: Annotated[
        int | None,
        typer.Option(
            help="Decision rule: keep a position at least this many bars (default: "
            "the label horizon; 0 = off)."
        ),
    ] = None,
    edge_check: Annotated[
        bool,
        typer.Option(
            help="Decision rule: trade only when the expected move pays the round-trip cost."
        ),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    metrics_textfile: Annotated[
        Path | None,
        typer.Option(
            "--metrics-textfile",
            help="Write Prometheus training metrics to this *.prom file as jobs finish "
            "(node_exporter's textfile collector).",
        ),
    ] = None,
) -> None:
    """Train one model per symbol and publish each as a candidate version."""
    if ctx.invoked_subcommand is not None:
        return
    from alphaops.features import LabelRule
    from alphaops.services.training import load_job_file, make_jobs

    cli = get_context(ctx)
    if executor not in EXECUTORS:
        raise UsageError(f"unknown executor {executor!r}", fix=f"use one of {list(EXECUTORS)}")
    if job is not None:
        base = load_job_file(job)
        jobs = (
            [base]
            if pooled or len(base.symbols) == 1
            else [base.for_symbol(s) for s in base.symbols]
        )
    else:
        if not symbols:
            raise UsageError("no symbols given", fix="pass --symbols BTCUSDT,ETHUSDT or --job FILE")
        jobs = make_jobs(
            [s for s in symbols.split(",") if s.strip()],
            model,
            timeframe=timeframe,
            label=LabelRule.from_options(
                kind=kind, horizon=horizon, threshold=threshold, scale=label_scale
            ),
            params=_parse_params(param or []),
            lookback=lookback,
            seed=seed,
            pooled=pooled,
            start=start,
            end=end,
        )
    jobs = [_with_decision(j, min_confidence, min_hold, edge_check) for j in jobs]
    if metrics_textfile is not None and not metrics_textfile.parent.is_dir():
        raise UsageError(
            f"--metrics-textfile {metrics_textfile}: folder {metrics_textfile.parent} is missing",
            fix="point it into node_exporter's --collector.textfile.directory (it must exist)",
        )
    summary = _run_with_bars(
        cli.config, cli.err, jobs, executor, workers, ray_address, as_json, metrics_textfile
    )
    if as_json:
        cli.print_json(summary.to_dict())
    else:
        render_summary(cli.console, summary)
    if summary.cancelled:
        raise CancelledError(
            "training interrupted: running jobs were stopped and published nothing",
            fix="run the command again for the jobs marked cancelled",
        )
    if summary.count("failed"):
        raise typer.Exit(1)


def _with_decision(
    job: TrainingJob, min_confidence: float | None, min_hold: int | None, edge_check: bool
) -> TrainingJob:
    # The options change the job's rule (its own or the defaults) only where they are given.
    changes: dict[str, Any] = {}
    if min_confidence is not None:
        changes["min_confidence"] = min_confidence
    if min_hold is not None:
        changes["min_hold_bars"] = min_hold
    if not edge_check:
        changes["min_edge_over_cost"] = 0.0
    if not changes:
        return job
    from alphaops.scoring import DecisionRule

    rule = DecisionRule.from_dict(job.decision_rule.to_dict() | changes)
    return TrainingJob.from_dict(job.to_dict() | {"decision": rule.to_dict()})


class TrainingBars:
    """Rich progress bars for training jobs: one bar per job plus an overall bar.

    Pass :meth:`on_progress` and :meth:`on_done` as the training callbacks.
    """

    COLUMNS = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    )

    def __init__(self, bars: Progress, names: list[str]) -> None:
        self.bars = bars
        self.overall = bars.add_task("[bold]all jobs", total=len(names), status="")
        self.tasks: list[TaskID] = [bars.add_task(n, total=None, status="queued") for n in names]

    def on_progress(self, index: int, update: ProgressUpdate) -> None:
        """Move job ``index``'s bar to the reported epoch or boosting round."""
        loss = update.metrics.get("val_loss")
        status = "" if loss is None else f"val_loss {loss:.4f}"
        self.bars.update(
            self.tasks[index], completed=update.epoch, total=update.total, status=status
        )

    def on_done(self, outcome: JobOutcome) -> None:
        """Fill the finished job's bar and show how it ended."""
        task = self.bars.tasks[self.tasks[outcome.index]]
        total = task.total or 1
        status = outcome.status + (f" v{outcome.version}" if outcome.version else "")
        self.bars.update(self.tasks[outcome.index], completed=total, total=total, status=status)
        self.bars.advance(self.overall)


def _run_with_bars(
    config: Any,
    err: Console,
    jobs: list[Any],
    executor: Any,
    workers: int | None,
    ray_address: str | None,
    quiet: bool,
    metrics_textfile: Path | None = None,
) -> TrainingSummary:
    from alphaops.services.training import train_models
    from alphaops.training import CancelToken

    cancel = CancelToken()
    with Progress(*TrainingBars.COLUMNS, console=err, disable=quiet) as bars:
        ui = TrainingBars(bars, [f"{j.registry_symbol} {j.model}" for j in jobs])
        progress: Callable[[int, Any], None] = ui.on_progress
        on_done: Callable[[Any], None] = ui.on_done
        write: Callable[[], None] = lambda: None  # noqa: E731
        if metrics_textfile is not None:
            progress, on_done, write = _with_metrics(metrics_textfile, jobs, cancel, ui)
        try:
            return train_models(
                config,
                jobs,
                executor=executor,
                max_workers=workers,
                ray_address=ray_address,
                progress=progress,
                on_done=on_done,
                cancel=cancel,
            )
        finally:
            write()


def _with_metrics(
    path: Path, jobs: list[Any], cancel: Any, ui: TrainingBars
) -> tuple[Callable[[int, Any], None], Callable[[Any], None], Callable[[], None]]:
    # Training metrics (the serve extra's prometheus-client) written after every finished job.
    try:
        from prometheus_client import CollectorRegistry

        from alphaops.serve.metrics import TrainingMetrics, write_textfile
    except ImportError as exc:
        raise UsageError(
            f"--metrics-textfile needs prometheus-client ({exc})",
            fix="pip install 'alphaops[serve]'",
        ) from exc
    metrics = TrainingMetrics(CollectorRegistry())
    count, finish = metrics.sinks(jobs, cancel)

    def write() -> None:
        write_textfile(metrics.registry, path)

    def progress(index: int, update: Any) -> None:
        ui.on_progress(index, update)
        count(index, update)

    def on_done(outcome: Any) -> None:
        ui.on_done(outcome)
        finish(outcome)
        write()

    return progress, on_done, write


def render_summary(console: Console, summary: TrainingSummary) -> None:
    """Print one row per job: status, version, validation metrics or the error."""
    table = Table("symbol", "model", "status", "version", "val_loss", "val_acc", "seconds", "error")
    for o in summary.outcomes:
        m = o.metrics
        table.add_row(
            o.job.registry_symbol,
            o.job.model,
            o.status,
            o.ref or "",
            f"{m['val_loss']:.4f}" if "val_loss" in m else "",
            f"{m['val_accuracy']:.3f}" if "val_accuracy" in m else "",
            f"{o.seconds:.1f}",
            (o.error or {}).get("message", ""),
        )
    console.print(table)
    console.print(
        f"{summary.count('published')} published as candidates, {summary.count('failed')} "
        f"failed, {summary.count('cancelled')} cancelled in {summary.seconds:.1f}s "
        f"({summary.executor})"
    )


@app.command("compare")
def compare(
    ctx: typer.Context,
    config_a: Annotated[Path, typer.Argument(help="Current training job (YAML/JSON).")],
    config_b: Annotated[Path, typer.Argument(help="Candidate training job (YAML/JSON).")],
    tolerance: Annotated[float, typer.Option(help="Largest accepted metric difference.")] = 0.01,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Train both configurations on the same data and split; compare validation metrics."""
    from alphaops.services.training import compare_configs

    cli = get_context(ctx)
    with cli.err.status("training both configurations …", spinner="dots"):
        result = compare_configs(cli.config, config_a, config_b, tolerance=tolerance)
    if as_json:
        cli.print_json(result.to_dict())
    else:
        render_comparison(cli.console, result)
    if not result.within_tolerance:
        raise typer.Exit(2)


def render_comparison(console: Console, result: Comparison) -> None:
    """Print each metric of A and B, their difference, and whether it is within tolerance."""
    table = Table("metric", "A", "B", "B - A", f"within ±{result.tolerance:g}")
    for d in result.differences:
        table.add_row(
            d.metric,
            f"{d.a:.4f}",
            f"{d.b:.4f}",
            f"{d.difference:+.4f}",
            "yes" if d.within else "[red]no[/]",
        )
    console.print(table)
    verdict = "within tolerance" if result.within_tolerance else "[red]outside tolerance[/]"
    console.print(f"B is {verdict} of A")
