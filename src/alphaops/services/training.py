"""Training use cases: what ``alphaops train`` (and the HTTP API) call.

Candles come from the home's store, trained bundles are published into the home's registry
as **candidates** (no alias moves: promotion is a separate, audited step).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from alphaops.core.config import AlphaOpsConfig
from alphaops.core.errors import SpecError, UsageError
from alphaops.data.candles import Candles
from alphaops.features import FeatureSpec, LabelRule
from alphaops.registry import ModelVersion
from alphaops.services._common import open_configured_registry
from alphaops.services.data import open_store
from alphaops.training import CancelToken, ProgressCallback, TrainingJob, publish_trained
from alphaops.training.compare import Comparison, compare_jobs
from alphaops.training.executor import train_job_async
from alphaops.training.fanout import ExecutorKind, JobOutcome, ProgressSink, run_jobs

__all__ = [
    "TrainingSummary",
    "compare_configs",
    "job_to_yaml",
    "load_candles",
    "load_job_file",
    "make_jobs",
    "train_candidate_async",
    "train_models",
    "train_quickstart_candidates",
]


@dataclass(frozen=True)
class TrainingSummary:
    """The outcome of every job of one ``alphaops train`` run."""

    outcomes: list[JobOutcome]
    executor: str
    seconds: float

    def count(self, status: str) -> int:
        """Return how many jobs ended with ``status``."""
        return sum(o.status == status for o in self.outcomes)

    @property
    def cancelled(self) -> bool:
        """Return whether any job was cancelled."""
        return self.count("cancelled") > 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready summary."""
        return {
            "executor": self.executor,
            "seconds": round(self.seconds, 3),
            "published": self.count("published"),
            "failed": self.count("failed"),
            "cancelled": self.count("cancelled"),
            "jobs": [o.to_dict() for o in self.outcomes],
        }


def make_jobs(
    symbols: Sequence[str],
    model: str,
    *,
    timeframe: str,
    label: LabelRule,
    features: FeatureSpec | None = None,
    params: Mapping[str, Any] | None = None,
    lookback: int = 32,
    seed: int = 0,
    pooled: bool = False,
    start: str | None = None,
    end: str | None = None,
) -> list[TrainingJob]:
    """Return one job per symbol, or one pooled job over all symbols."""
    fields: dict[str, Any] = {
        "symbols": tuple(symbols),
        "timeframe": timeframe,
        "model": model,
        "label": label,
        "params": dict(params or {}),
        "lookback": lookback,
        "seed": seed,
        "start": start,
        "end": end,
    }
    if features is not None:
        fields["features"] = features
    job = TrainingJob.model_validate(fields)
    return [job] if pooled else [job.for_symbol(s) for s in job.symbols]


def load_job_file(path: Path) -> TrainingJob:
    """Read a training job from a YAML or JSON file (the fields of :class:`TrainingJob`)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(
            f"cannot read training config {path}: {exc.strerror}", fix="check the path"
        ) from exc
    except yaml.YAMLError as exc:
        raise SpecError(
            f"training config {path} is not valid YAML/JSON: {exc}", fix="fix it"
        ) from exc
    return TrainingJob.from_dict(data)


def load_candles(config: AlphaOpsConfig, jobs: Sequence[TrainingJob]) -> dict[str, Candles]:
    """Load every symbol the jobs name from the store (one timeframe per run)."""
    timeframes = {j.timeframe for j in jobs}
    if len(timeframes) > 1:
        raise UsageError(
            f"jobs use several timeframes {sorted(timeframes)}", fix="run one timeframe at a time"
        )
    store = open_store(config)
    symbols = sorted({s for j in jobs for s in j.symbols})
    return {s: store.load(s, jobs[0].timeframe) for s in symbols}


def train_models(
    config: AlphaOpsConfig,
    jobs: Sequence[TrainingJob],
    *,
    executor: ExecutorKind = "process",
    max_workers: int | None = None,
    ray_address: str | None = None,
    publish: bool = True,
    candles: Mapping[str, Candles] | None = None,
    progress: ProgressSink | None = None,
    on_done: Callable[[JobOutcome], None] | None = None,
    cancel: CancelToken | None = None,
) -> TrainingSummary:
    """Train the jobs and publish each trained model as a candidate; failures stay isolated."""
    import time

    started = time.perf_counter()
    data = dict(candles) if candles is not None else load_candles(config, jobs)
    registry = open_configured_registry(config) if publish else None
    try:
        outcomes = run_jobs(
            jobs,
            data,
            executor=executor,
            max_workers=max_workers,
            ray_address=ray_address,
            publish=(lambda trained: publish_trained(trained, registry)) if registry else None,
            progress=progress,
            on_done=on_done,
            cancel=cancel,
        )
    finally:
        if registry is not None:
            registry.close()
    return TrainingSummary(outcomes, executor, time.perf_counter() - started)


async def train_candidate_async(
    config: AlphaOpsConfig,
    job: TrainingJob,
    *,
    candles: Mapping[str, Candles] | None = None,
    callbacks: Sequence[ProgressCallback] = (),
    cancel: CancelToken | None = None,
) -> ModelVersion:
    """Train ``job`` off the event loop and publish it as a candidate; cancellable."""
    data = (
        dict(candles)
        if candles is not None
        else await asyncio.to_thread(load_candles, config, [job])
    )
    trained = await train_job_async(job, data, callbacks=callbacks, cancel=cancel)

    def publish() -> ModelVersion:
        with open_configured_registry(config) as registry:
            return publish_trained(trained, registry)

    return await asyncio.to_thread(publish)


def compare_configs(
    config: AlphaOpsConfig,
    path_a: Path,
    path_b: Path,
    *,
    tolerance: float = 0.01,
    candles: Mapping[str, Candles] | None = None,
    callbacks: Sequence[ProgressCallback] = (),
    cancel: CancelToken | None = None,
) -> Comparison:
    """Train the jobs in two config files on the same data and split; compare their metrics."""
    job_a, job_b = load_job_file(path_a), load_job_file(path_b)
    data = dict(candles) if candles is not None else load_candles(config, [job_a])
    return compare_jobs(job_a, job_b, data, tolerance=tolerance, callbacks=callbacks, cancel=cancel)


def job_to_yaml(job: TrainingJob) -> str:
    """Return a job as YAML text that :func:`load_job_file` reads back."""
    return yaml.safe_dump(json.loads(json.dumps(job.to_dict())), sort_keys=False)


def quickstart_jobs(
    symbol: str = "BTCUSDT", *, label: LabelRule, end: str | None = None
) -> list[TrainingJob]:
    """Return the quickstart's jobs: two LightGBMs (a champion and a challenger to roll out)
    and a 3-epoch LSTM, all on one symbol.

    Sized for a laptop CPU (seconds each). ``end`` keeps the bars from then on out of
    training, so the gates have an out-of-sample window to judge the candidates on. The
    LightGBMs boost a fixed 60 rounds: early stopping on the short sample stops after ~20,
    where the model is still timid (confidence std near the 0.05 gate).
    """
    fixed = {"n_estimators": 60, "early_stopping_rounds": 0}
    return [
        *make_jobs([symbol], "lightgbm", timeframe="1h", label=label, params=fixed, end=end),
        *make_jobs(
            [symbol],
            "lightgbm",
            timeframe="1h",
            label=label,
            params=fixed | {"num_leaves": 15},
            seed=1,
            end=end,
        ),
        *make_jobs(
            [symbol],
            "lstm",
            timeframe="1h",
            label=label,
            params={"max_epochs": 3, "patience": 3},
            lookback=32,
            end=end,
        ),
    ]


def train_quickstart_candidates(
    config: AlphaOpsConfig,
    *,
    symbol: str = "BTCUSDT",
    label: LabelRule | None = None,
    end: str | None = None,
    progress: ProgressSink | None = None,
    on_done: Callable[[JobOutcome], None] | None = None,
    cancel: CancelToken | None = None,
) -> TrainingSummary:
    """Train the :func:`quickstart_jobs` on the stored data; publish both as candidates."""
    jobs = quickstart_jobs(symbol, label=label or LabelRule.balanced("ternary", horizon=4), end=end)
    return train_models(
        config,
        jobs,
        executor="sequential",
        progress=progress,
        on_done=on_done,
        cancel=cancel,
    )
