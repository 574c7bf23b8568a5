"""The live predictor: serve the champion of one model and follow the registry without pausing.

A background thread polls the registry generation (one row; PostgreSQL LISTEN/NOTIFY wakes
it early when ``listen=True``). When the aliases of the model changed it loads, verifies and
smoke-tests the new version off the hot path, then publishes a new immutable :class:`_Slot`
by one reference assignment. A prediction reads the slot once, so in-flight calls finish on
the model they started with. A version that fails verification is refused, an event is
recorded, and the current model keeps serving.

Actions follow each version's :class:`~alphaops.scoring.DecisionRule` (from its manifest;
argmax for bundles without one) through one :class:`~alphaops.scoring.Decider` per loaded
version, fed every bar that version scores, so a champion's live actions equal, bar for bar,
``BundlePredictor.score(...).actions`` on the same bars from the same first bar. The decider
of a version that becomes champion starts flat (its path is the bars it serves as champion);
the others keep their paths while they stay loaded. A canary challenger decides only on the
bars routed to it (and a fallback only on the bars it serves), so its path is that subset.

>>> import tempfile, pathlib, numpy as np
>>> from alphaops.registry import open_registry
>>> from alphaops.registry.testing import build_tiny_bundle, publish_cleared
>>> tmp = pathlib.Path(tempfile.mkdtemp())
>>> reg = open_registry(tmp / "home")
>>> _ = publish_cleared(reg, build_tiny_bundle(tmp / "b1", seed=1))
>>> _ = reg.promote("BTCUSDT/logreg/1", expect=None, reason="first")
>>> live = LivePredictor(reg, "BTCUSDT/logreg", actions={"down": -1, "up": 1}, start=False)
>>> p = live.predict(np.zeros(4))
>>> p.version, p.role, p.action in (-1, 1), round(sum(p.probabilities), 3)
(1, 'champion', True, 1.0)
>>> live.close(); reg.close()
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from alphaops.core.errors import AlphaOpsError, ExternalServiceError, NotFoundError, UsageError
from alphaops.data.candles import Candles
from alphaops.journal import Journal, client_order_id
from alphaops.registry import ModelKey, Registry, parse_key
from alphaops.registry._alarms import HOLD_ALARM
from alphaops.registry.refs import CHALLENGER, CHAMPION, PREVIOUS
from alphaops.rollout import IntervalStats
from alphaops.rollout.routing import check_percentage, routes_to_challenger
from alphaops.runtime._feed import Feed
from alphaops.runtime._loader import ProcessFetcher
from alphaops.runtime._model import (
    Fetched,
    LoadedModel,
    ModelFailedError,
    build_model,
    fetch_verified,
)
from alphaops.runtime._tally import ChallengerTally
from alphaops.scoring import (
    ACTIONS,
    Bar,
    BarLike,
    Decider,
    DecisionRule,
    FeatureSource,
    Rows,
    decision_rule_of,
)

if TYPE_CHECKING:
    from alphaops.registry._notify import AliasListener

__all__ = ["LivePredictor", "Prediction", "Role", "Routing", "RuntimeEvent"]

Role = Literal["champion", "challenger", "fallback"]
_LISTEN_SLICE_S = 0.2
"""How long the listening thread blocks at most before it checks whether it was closed."""

EventKind = Literal[
    "loaded",
    "swapped",
    "refused",
    "fallback",
    "poll_failed",
    "shadow",
    "listening",
    "listen_failed",
    "loader_failed",
    "journal_dropped",
    "hold",
]


@dataclass(frozen=True, slots=True)
class Prediction:
    """One prediction: the action, the class probabilities, and who produced it."""

    action: int
    """-1 sell, 0 hold/flat, +1 buy."""
    probabilities: tuple[float, ...]
    classes: tuple[str, ...]
    version: int
    """The version whose session computed this prediction."""
    role: Role
    """``champion``, ``challenger`` (canary) or ``fallback`` (the champion failed)."""
    key: ModelKey
    decision_id: str | None = None
    """The journal's id of this decision (``None`` when the predictor has no journal)."""

    @property
    def action_name(self) -> str:
        """Return ``SELL``, ``HOLD`` or ``BUY``."""
        return ACTIONS[self.action + 1]

    @property
    def ref(self) -> str:
        """Return ``SYMBOL/TYPE/N`` of the serving version."""
        return f"{self.key}/{self.version}"

    def client_order_id(self, n: int = 0) -> str:
        """Return the client order id of the ``n``-th order placed on this decision.

        Give it to the exchange: fills reported with it are attributed to this decision (and
        so to this version and role) by :meth:`~alphaops.journal.Journal.record_fill`.
        """
        if self.decision_id is None:
            raise UsageError(
                "this prediction was not journaled, so it has no decision id",
                fix="construct the LivePredictor with journal=Journal(registry)",
            )
        return client_order_id(self.decision_id, n)


@dataclass(frozen=True)
class RuntimeEvent:
    """Something the runtime did besides predicting (a swap, a refusal, a fallback …)."""

    at: float
    kind: EventKind
    version: int | None
    detail: str


@dataclass(frozen=True)
class Routing:
    """How a rollout splits traffic: shadow (challenger never acts) or canary percentage."""

    rollout_id: str
    percentage: int = 0
    shadow: bool = False

    def __post_init__(self) -> None:
        check_percentage(self.percentage)


@dataclass(frozen=True, eq=False)
class _Slot:
    # Everything a prediction needs, published atomically by one reference assignment.
    champion: LoadedModel
    previous: LoadedModel | None = None
    challenger: LoadedModel | None = None
    routing: Routing | None = None
    generation: int = -1
    versions: Mapping[str, int] = field(default_factory=dict)
    fallback: LoadedModel | None = None  # the champion of the configured simpler model type
    # Whether one prepared batch is valid for both champion and challenger (same input shape,
    # dtype and feature computation): shadow and canary agreement then prepare it only once.
    shared_input: bool = False
    # Why bots must hold (an open autopilot_hold alarm of the model): every served decision is
    # HOLD, journaled as such beside the model's probabilities, until it is acknowledged.
    hold: str | None = None
    # One decision path per loaded version (by ref): the rule's position and holding period.
    paths: Mapping[str, _Path] = field(default_factory=dict)


class _Path:
    # The decision rule of one version along the bars it scores. A second prediction for the
    # same bar (e.g. predict_candles on an unchanged window) repeats that bar's action
    # instead of counting the bar twice.
    __slots__ = ("decider", "last_action", "last_ms", "lock")

    def __init__(self, decider: Decider) -> None:
        self.decider = decider
        self.last_ms: int | None = None
        self.last_action = 0
        self.lock = threading.Lock()

    def decide(self, probabilities: npt.NDArray[np.float32], bar_ms: int | None) -> int:
        with self.lock:
            if bar_ms is None or bar_ms != self.last_ms:
                self.last_action = self.decider.update(probabilities)
                self.last_ms = bar_ms
            return self.last_action


def _same_input(a: LoadedModel, b: LoadedModel) -> bool:
    # One prepared batch serves both models when their contracts build identical inputs.
    return a.contract.key == b.contract.key


class LivePredictor:
    """Serve the champion of ``key`` (``SYMBOL/TYPE``) from ``registry`` and follow its moves.

    ``poll_interval_s`` is how often the generation is read; ``clock`` stamps events (inject
    a fake in tests); ``features`` is the live feature source (its names must match every
    version); ``actions`` maps class names to -1/0/+1 (default SELL/HOLD/BUY, LOSS/WIN);
    ``strict`` raises on inference failure instead of falling back to ``previous``;
    ``fallback_type`` names a simpler model type of the same symbol (e.g. ``random_forest``)
    whose champion serves, after ``previous``, when inference fails; it must take the same
    features, and it follows that type's promotions like the main model.
    ``load_in="process"`` (the default) fetches and verifies versions that arrive while
    serving in a helper process (SQL, checksums, reading the files), so that the serving
    process only builds the session and smoke-tests it and predictions keep the interpreter;
    ``"thread"`` does everything in the polling thread (no helper process).
    ``journal`` records every decision (champion, canary challenger, shadow, fallback) with
    its version, manifest sha256, rollout, routing key, probabilities and a hash of the input,
    through the journal's bounded queue and background writer: a prediction never waits on
    disk, and :attr:`Prediction.decision_id` names the row (see
    :meth:`Prediction.client_order_id`). Closing the predictor does not close the journal.
    ``start=False`` skips the polling thread (call :meth:`poll` yourself). With
    ``follow_rollouts`` (the default) the routing (shadow or canary percentage) follows the
    model's active rollout in the registry, re-read whenever the generation changes; an
    explicit :meth:`set_routing` overrides it. What the challenger does (answers, failures,
    latency, agreement with the champion, outcomes) is counted for the rollout's analysis:
    read it with :meth:`take_interval_stats` (a ``RolloutMonitor`` in ``alphaops.services``
    does so every rollout interval); champion-served predictions count nothing.
    """

    def __init__(
        self,
        registry: Registry,
        key: ModelKey | str,
        *,
        poll_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        features: FeatureSource | None = None,
        actions: Mapping[str, int] | None = None,
        strict: bool = False,
        listen: bool = False,
        threads: int = 1,
        max_events: int = 10_000,
        on_event: Callable[[RuntimeEvent], None] | None = None,
        follow_rollouts: bool = True,
        fallback_type: str | None = None,
        load_in: Literal["process", "thread"] = "process",
        journal: Journal | None = None,
        start: bool = True,
    ) -> None:
        if poll_interval_s <= 0:
            raise UsageError(
                f"poll_interval_s={poll_interval_s} must be positive", fix="pass e.g. 1.0"
            )
        if listen and registry.database.dialect != "postgresql":
            raise UsageError(
                f"listen=True needs a PostgreSQL registry, not {registry.database.dialect}",
                fix="drop listen=True: polling the generation follows the registry on every "
                "backend (lower poll_interval_s to follow sooner)",
            )
        self.registry = registry
        self.key = parse_key(key) if isinstance(key, str) else key
        self.fallback_key = (
            None if fallback_type is None else parse_key(f"{self.key.symbol}/{fallback_type}")
        )
        if self.fallback_key == self.key:
            raise UsageError(
                f"fallback_type {fallback_type!r} is the served model type itself",
                fix="name a different, simpler model type, e.g. 'random_forest'",
            )
        self._fallback_cache: dict[int, LoadedModel] = {}
        self.poll_interval_s = poll_interval_s
        self.strict = strict
        self._clock = clock
        self._features = features
        self._actions = actions
        self._threads = threads
        self._listen = listen
        self._on_event = on_event
        self.events: deque[RuntimeEvent] = deque(maxlen=max_events)
        self.shadow_log: deque[tuple[Prediction, Prediction]] = deque(maxlen=max_events)
        self._cache: dict[int, LoadedModel] = {}
        self._rules: dict[str, DecisionRule] = {}
        self._refused: set[int] = set()
        self._routing: Routing | None = None
        self._follow_rollouts = follow_rollouts
        self._rollout_routing: Routing | None = None
        self._tally = ChallengerTally()
        self._feed = Feed()
        self.journal = journal
        if journal is not None:
            journal.start()
        self._submit = None if journal is None else journal.submit
        self._id_prefix = secrets.token_hex(6) + "-"
        self._ids = itertools.count(1)
        self._drops = 0
        self._generations = registry.generation_reader()  # an idle poll: one cheap read
        if load_in not in ("process", "thread"):
            raise UsageError(f"load_in={load_in!r}", fix="pass 'process' or 'thread'")
        self._fetcher = ProcessFetcher(registry) if load_in == "process" else None
        self._poll_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        generation = registry.generation()
        aliases = registry.aliases(self.key)
        if CHAMPION not in aliases:
            raise NotFoundError(
                f"{self.key} has no champion to serve",
                fix=f"promote a version first: alphaops registry promote {self.key}/N",
            )
        self._rollout_routing = self._read_rollout()
        self._slot = self._build_slot(aliases, generation, initial=True)
        if start:
            self.start()

    # -- hot path ------------------------------------------------------------------------

    def predict(self, rows: Rows, *, routing_key: str | int | None = None) -> Prediction:
        """Return the prediction for one input row (validated: names, order, dtype, NaN).

        With a canary rollout, ``routing_key`` chooses champion or challenger deterministically.
        Each call is one new bar for the decision rule (its holding period counts calls).
        """
        slot = self._slot  # one read: this call finishes on these models whatever happens
        model, role = self._route(slot, routing_key)
        if self._submit is None:
            return self._serve(
                slot, model, role, lambda m: m.contract.rows(rows), routing_key, None
            )
        # Journaled: the input is hashed later, by the writer thread, so it must not be the
        # caller's array (which the caller may reuse for the next row).
        return self._serve(
            slot, model, role, lambda m: m.contract.rows(rows).copy(), routing_key, None
        )

    def on_bar(self, bar: BarLike, *, routing_key: str | int | None = None) -> Prediction:
        """Take one new closed bar and return the prediction for it (the streaming entry).

        ``bar`` is a :class:`~alphaops.scoring.Bar`, a mapping with ``timestamp`` and OHLCV
        (and optionally ``symbol``), or a ccxt row ``[ms, open, high, low, close, volume]``.
        Only the new bar is validated (newer than the last, on the model's timeframe grid,
        sane OHLC; :class:`~alphaops.core.errors.StaleBarError`,
        :class:`~alphaops.core.errors.WrongMarketError`,
        :class:`~alphaops.core.errors.DataValidationError`) and every feature is updated
        incrementally: the input equals, bit for bit, what the gates build in batch from the
        same first bar. Raise :class:`~alphaops.core.errors.InsufficientDataError` during
        warm-up (see :meth:`warm_up`) and :class:`~alphaops.core.errors.DataGapError` while a
        sequence window crosses a gap. Call it from one thread.
        """
        slot = self._slot
        self._feed.push(Bar.of(bar), slot.champion.contract)
        model, role = self._route(slot, routing_key)
        return self._serve(slot, model, role, self._feed.batch_of, routing_key, self._feed.last_ms)

    def warm_up(self, candles: Candles) -> None:
        """Feed the recent history ``candles`` without predicting (before :meth:`on_bar`)."""
        self._feed.sync(candles, self._slot.champion.contract)

    def predict_candles(
        self, candles: Candles, *, routing_key: str | int | None = None
    ) -> Prediction:
        """Return the prediction for the newest bar of ``candles`` (a rolling window).

        Candles of another symbol or timeframe are refused
        (:class:`~alphaops.core.errors.WrongMarketError`). Only the candles newer than the
        last bar seen are fed to the streaming features, so passing the bot's rolling window
        on every bar updates the features once per new bar (the window is only searched for
        the last bar seen); a window that does not overlap the last one restarts the features
        from its first candle, and one that ends before it is stale. Raise
        :class:`~alphaops.core.errors.InsufficientDataError` while there is not enough
        history for the features (and the lookback of sequence models).
        """
        slot = self._slot
        model, role = self._route(slot, routing_key)
        if slot.champion.contract.spec is None:  # a batch-only feature source (a test seam)
            last = int(candles.timestamps_ms[-1]) if len(candles) else None
            return self._serve(
                slot, model, role, lambda m: m.contract.latest(candles), routing_key, last
            )
        self._feed.sync(candles, slot.champion.contract)
        return self._serve(slot, model, role, self._feed.batch_of, routing_key, self._feed.last_ms)

    def _route(self, slot: _Slot, routing_key: str | int | None) -> tuple[LoadedModel, Role]:
        routing = slot.routing
        if (
            routing is not None
            and slot.challenger is not None
            and not routing.shadow
            and routing_key is not None
            and routes_to_challenger(routing.rollout_id, routing_key, routing.percentage)
        ):
            return slot.challenger, "challenger"
        return slot.champion, "champion"

    def _serve(
        self,
        slot: _Slot,
        model: LoadedModel,
        role: Role,
        prepare: Callable[[LoadedModel], npt.NDArray[Any]],
        routing_key: str | int | None,
        bar_ms: int | None,
    ) -> Prediction:
        if role == "challenger":  # the only branch the champion path pays for
            return self._serve_challenger(slot, model, prepare, routing_key, bar_ms)
        batch = prepare(model)  # input errors are the caller's: they raise, never fall back
        try:
            result = self._run(model, batch, role, slot, routing_key, bar_ms)
        except Exception as exc:
            if self.strict:
                raise self._failed(model, exc) from exc
            result = self._fallback(slot, model, prepare, exc, routing_key, bar_ms)
        if slot.routing is not None and slot.routing.shadow and slot.challenger is not None:
            self._shadow(slot, slot.challenger, prepare, batch, result, routing_key, bar_ms)
        return result

    def _serve_challenger(
        self,
        slot: _Slot,
        model: LoadedModel,
        prepare: Callable[[LoadedModel], npt.NDArray[Any]],
        routing_key: str | int | None,
        bar_ms: int | None,
    ) -> Prediction:
        # Canary: the challenger acts. Its answer, inference latency and failures are counted;
        # the champion scores the same input too, so agreement is known in canary as well.
        batch = prepare(model)
        began = time.perf_counter()
        try:
            result = self._run(model, batch, "challenger", slot, routing_key, bar_ms)
        except Exception as exc:
            self._tally.error()
            if self.strict:
                raise self._failed(model, exc) from exc
            return self._fallback(slot, model, prepare, exc, routing_key, bar_ms)
        latency = time.perf_counter() - began
        reference = self._champion_action(slot, batch, prepare, bar_ms)
        self._tally.answer(
            model.version,
            latency,
            result.action,
            champion_action=reference,
            routing_key=routing_key,
        )
        return result

    def _champion_action(
        self,
        slot: _Slot,
        batch: npt.NDArray[Any],
        prepare: Callable[[LoadedModel], npt.NDArray[Any]],
        bar_ms: int | None,
    ) -> int | None:
        # What the champion would have done on a challenger-served input; None if it cannot
        # say (then that answer is left out of the agreement, never counted as an error).
        champion = slot.champion
        try:
            probs = champion.run(batch if slot.shared_input else prepare(champion))[-1]
        except Exception:
            return None
        # The champion decides this bar too, so its path has every bar, canary or not.
        return self._decide(slot, champion, probs, bar_ms)

    def _run(
        self,
        model: LoadedModel,
        batch: npt.NDArray[Any],
        role: Role,
        slot: _Slot,
        routing_key: str | int | None,
        bar_ms: int | None,
        *,
        shadow: bool = False,
    ) -> Prediction:
        probs = model.run(batch)[-1]
        action = self._decide(slot, model, probs, bar_ms)
        if slot.hold is not None and not shadow:
            action = 0
        probabilities = tuple(float(p) for p in probs)
        decision_id = None
        if self._submit is not None:  # a tuple on a deque: the writer thread does the rest
            decision_id = self._id_prefix + format(next(self._ids), "x")
            routing = slot.routing
            queued = self._submit(
                (
                    decision_id,
                    time.time(),
                    bar_ms,
                    model.key.symbol,
                    model.key.model_type,
                    model.version,
                    model.manifest_sha256,
                    "shadow" if shadow else role,
                    None if routing is None else routing.rollout_id,
                    routing_key,
                    action,
                    probabilities,
                    batch,
                )
            )
            if not queued:
                self._dropped(decision_id)
        return Prediction(
            action, probabilities, model.classes, model.version, role, model.key, decision_id
        )

    def _decide(
        self, slot: _Slot, model: LoadedModel, probs: npt.NDArray[np.float32], bar_ms: int | None
    ) -> int:
        path = slot.paths.get(model.ref)
        if path is None:  # not expected: every slot model has a path; decide by argmax
            return int(model.class_actions[int(np.argmax(probs))])
        return path.decide(probs, bar_ms)

    def _fallback(
        self,
        slot: _Slot,
        failed: LoadedModel,
        prepare: Callable[[LoadedModel], npt.NDArray[Any]],
        exc: BaseException,
        routing_key: str | int | None,
        bar_ms: int | None,
    ) -> Prediction:
        candidates = [
            m
            for m in (slot.champion, slot.previous, slot.fallback)
            if m is not None and m is not failed
        ]
        for model in candidates:
            try:
                result = self._run(model, prepare(model), "fallback", slot, routing_key, bar_ms)
            except Exception:
                continue
            self._event(
                "fallback", failed.version, f"{failed.ref} failed ({exc}); served by {model.ref}"
            )
            return result
        raise self._failed(failed, exc) from exc

    def _shadow(
        self,
        slot: _Slot,
        challenger: LoadedModel,
        prepare: Callable[[LoadedModel], npt.NDArray[Any]],
        batch: npt.NDArray[Any],
        acted: Prediction,
        routing_key: str | int | None,
        bar_ms: int | None,
    ) -> None:
        # The shadow never affects the bot: its failures become an event and a counted error.
        try:
            shadow_batch = batch if slot.shared_input else prepare(challenger)
        except Exception as exc:  # the challenger's own input preparation, not its inference
            self._event("shadow", challenger.version, f"shadow {challenger.ref} failed: {exc}")
            return
        began = time.perf_counter()
        try:
            shadow = self._run(
                challenger, shadow_batch, "challenger", slot, routing_key, bar_ms, shadow=True
            )
        except Exception as exc:
            self._tally.error()
            self._event("shadow", challenger.version, f"shadow {challenger.ref} failed: {exc}")
            return
        latency = time.perf_counter() - began
        self.shadow_log.append((acted, shadow))
        self._tally.answer(
            challenger.version,
            latency,
            shadow.action,
            # Agreement is with the champion only: a fallback's answer is not the champion's.
            champion_action=acted.action if acted.role == "champion" else None,
            routing_key=routing_key,
        )

    def _dropped(self, decision_id: str) -> None:
        # The journal's queue is full (its database is down or too slow): the prediction
        # still serves; the first drop and every 1000th become an event.
        self._drops += 1
        if self._drops == 1 or self._drops % 1000 == 0:
            self._event(
                "journal_dropped",
                None,
                f"journal queue full: {self._drops} decision(s) not journaled (last "
                f"{decision_id}); see Journal.writer_stats()",
            )

    def _failed(self, model: LoadedModel, exc: BaseException) -> ModelFailedError:
        if isinstance(exc, ModelFailedError):
            return exc
        return ModelFailedError(
            f"{model.ref} failed at inference ({type(exc).__name__}: {exc}) and no fallback "
            "could serve",
            fix=f"roll back with `alphaops rollback {model.key}`",
        )

    # -- what the challenger did (the rollout's analysis reads it) -------------------------

    def take_interval_stats(self) -> IntervalStats:
        """Return what the challenger did since the last call, and start counting afresh.

        ``predictions`` counts every input the challenger was asked to answer (served in
        canary, or computed in shadow), failed ones included; ``errors`` those whose inference
        failed (in canary the bot was then served by the fallback); ``latency_p99_s`` is over
        the wall time of the challenger's inference (the most recent 4096 of the interval; a
        garbage-collection pause inside one counts, so judge a p99 on enough predictions);
        ``agreement`` is the share of answers whose action equals the champion's on the same
        input, 0.0 when nothing was compared: in shadow the champion acted on that input, in
        canary the champion also scores each challenger-served input (one more inference on
        those calls only, before they return); ``hit_rate`` comes from :meth:`record_outcome`
        (``None`` until an outcome arrives). The champion path counts nothing. Thread-safe: the
        read and the reset are one locked step.
        """
        return self._tally.take()

    def peek_interval_stats(self) -> IntervalStats:
        """Return :meth:`take_interval_stats` so far without resetting the counts."""
        return self._tally.peek()

    def record_outcome(self, routing_key: str | int, realised_return: float) -> bool:
        """Score the challenger's latest answer for ``routing_key`` on its realised return.

        Call it once the trade (or bar) that ``routing_key`` named has played out: a BUY is a
        hit when the return is positive, a SELL when it is negative; HOLD is not scored. The
        hit rate goes into the interval in which the outcome is recorded. Return whether a
        challenger answer was waiting for this key (the last 10 000 keys are kept; answers of
        a challenger that is no longer loaded are dropped); champion-served keys return False.
        """
        challenger = self._slot.challenger
        version = None if challenger is None else challenger.version
        return self._tally.outcome(routing_key, realised_return, version)

    # -- following the registry -------------------------------------------------------------

    @property
    def version(self) -> int:
        """Return the champion version being served right now."""
        return self._slot.champion.version

    @property
    def generation(self) -> int:
        """Return the registry generation the served models reflect."""
        return self._slot.generation

    def versions(self) -> dict[str, int]:
        """Return ``{role: version}`` of the loaded models (champion, previous, challenger)."""
        return dict(self._slot.versions)

    @property
    def routing(self) -> Routing | None:
        """Return how traffic is split right now (``None``: the champion serves everything)."""
        return self._slot.routing

    def set_routing(self, routing: Routing | None) -> None:
        """Split traffic by hand, overriding the registry's rollout; ``None`` returns to
        following the registry. Takes effect at once."""
        self._routing = routing
        self._slot = replace(self._slot, routing=self._current_routing())

    def _current_routing(self) -> Routing | None:
        return self._routing if self._routing is not None else self._rollout_routing

    def _read_rollout(self) -> Routing | None:
        if not self._follow_rollouts:
            return None
        record = self.registry.active_rollout(self.key)
        if record is None or record.phase not in ("shadow", "canary", "paused"):
            return None
        if record.shadow:
            return Routing(record.id, 0, shadow=True)
        return Routing(record.id, record.percentage)

    def poll(self) -> bool:
        """Read the generation and, if it moved, re-read the aliases and the active rollout, load
        and swap; return whether the served models or the routing changed. Never raises:
        failures become events."""
        with self._poll_lock:
            old = self._slot
            try:
                # Re-read after a change: a move committed during a slow load (e.g. a rollback
                # while a new version was verified) is published now, not one interval later.
                for _ in range(3):
                    generation = self._generations.read()
                    if generation == self._slot.generation:
                        break
                    aliases = self.registry.aliases(self.key)
                    self._rollout_routing = self._read_rollout()
                    self._slot = self._build_slot(aliases, generation, initial=False)
                return self._changed(old)
            except Exception as exc:  # a database hiccup must not stop the bot
                self._event("poll_failed", None, f"{type(exc).__name__}: {exc}")
                return self._changed(old)

    def _changed(self, old: _Slot) -> bool:
        return self._slot.versions != old.versions or self._slot.routing != old.routing

    def _build_slot(self, aliases: Mapping[str, int], generation: int, *, initial: bool) -> _Slot:
        current = None if initial else self._slot
        champion = self._get(aliases.get(CHAMPION), raise_refused=initial)
        if champion is None:
            assert current is not None  # the initial load raises instead
            champion = current.champion  # refused or unset: keep serving
        previous = self._get(aliases.get(PREVIOUS), raise_refused=False)
        if previous is None and current is not None and current.champion is not champion:
            previous = current.champion
        if previous is champion:  # the refused champion's "previous" is what still serves
            previous = None
        challenger = self._get(aliases.get(CHALLENGER), raise_refused=False)
        versions = {CHAMPION: champion.version}
        if previous is not None:
            versions[PREVIOUS] = previous.version
        if challenger is not None:
            versions[CHALLENGER] = challenger.version
        keep = set(versions.values())
        self._cache = {v: m for v, m in self._cache.items() if v in keep}
        if current is not None and current.champion is not champion:
            self._event("swapped", champion.version, f"{current.champion.ref} -> {champion.ref}")
        routing = self._current_routing()
        fallback = self._get_fallback(current)
        if fallback is not None:
            versions["fallback"] = fallback.version
        shared = challenger is not None and _same_input(champion, challenger)
        hold = self._hold_reason()
        if hold != (None if current is None else current.hold):
            what = f"holding: {hold}" if hold else "hold lifted: serving the model's actions"
            self._event("hold", champion.version, what)
        paths = self._paths(current, champion, (champion, previous, challenger, fallback))
        return _Slot(
            champion,
            previous,
            challenger,
            routing,
            generation,
            versions,
            fallback,
            shared,
            hold,
            paths,
        )

    def _paths(
        self,
        current: _Slot | None,
        champion: LoadedModel,
        models: tuple[LoadedModel | None, ...],
    ) -> dict[str, _Path]:
        # Keep each loaded version's path; a version that becomes champion starts flat.
        kept = {} if current is None else dict(current.paths)
        if current is not None and current.champion is not champion:
            kept.pop(champion.ref, None)
        paths: dict[str, _Path] = {}
        for model in models:
            if model is None or model.ref in paths:
                continue
            path = kept.get(model.ref)
            if path is None:
                rule = self._rules.get(model.ref) or decision_rule_of(model.contract.manifest)
                path = _Path(Decider(model.classes, rule, actions=self._actions))
            paths[model.ref] = path
        self._rules = {ref: rule for ref, rule in self._rules.items() if ref in paths}
        return paths

    def _check_decision(self, model: LoadedModel) -> None:
        # Refuse a version whose decision rule cannot be used, at load like any defect.
        rule = decision_rule_of(model.contract.manifest)
        Decider(model.classes, rule, actions=self._actions)
        self._rules[model.ref] = rule

    def _hold_reason(self) -> str | None:
        held = [a for a in self.registry.alarms(self.key, open_only=True) if a.kind == HOLD_ALARM]
        return held[-1].summary if held else None

    def _get_fallback(self, current: _Slot | None) -> LoadedModel | None:
        # The fallback type's champion, loaded and verified like any version; a failure to
        # load it is an event and the last good fallback (if any) stays.
        if self.fallback_key is None:
            return None
        kept = None if current is None else current.fallback
        version = self.registry.aliases(self.fallback_key).get(CHAMPION)
        if version is None:
            return kept
        if version in self._fallback_cache:
            return self._fallback_cache[version]
        try:
            model = build_model(
                self._fetch(self.fallback_key, version, initial=current is None),
                features=self._features,
                expect_features=self._expected_names(),
                actions=self._actions,
                threads=self._threads,
            )
            self._check_decision(model)
        except AlphaOpsError as exc:
            self._event("refused", version, f"fallback {self.fallback_key}/{version}: {exc}")
            return kept
        self._fallback_cache = {version: model}
        self._event("loaded", version, f"fallback {model.ref}")
        return model

    def _get(self, version: int | None, *, raise_refused: bool) -> LoadedModel | None:
        if version is None:
            return None
        if version in self._cache:
            return self._cache[version]
        if version in self._refused and not raise_refused:
            return None
        expect = None if not self._cache and self._features is None else self._expected_names()
        try:
            model = build_model(
                self._fetch(self.key, version, initial=getattr(self, "_slot", None) is None),
                features=self._features,
                expect_features=expect,
                actions=self._actions,
                threads=self._threads,
            )
            self._check_decision(model)
        except AlphaOpsError as exc:
            self._refused.add(version)
            self._event("refused", version, str(exc))
            if raise_refused:
                raise
            return None
        self._cache[version] = model
        self._event("loaded", version, model.ref)
        return model

    def _fetch(self, key: ModelKey, version: int, *, initial: bool) -> Fetched:
        # Versions loaded while serving are fetched and verified by the helper process; the
        # first load (in the constructor, nothing is served yet) and a failed helper use this
        # thread.
        if self._fetcher is None or initial:
            return fetch_verified(self.registry, key, version)
        try:
            return self._fetcher.fetch(key, version)
        except ExternalServiceError as exc:
            self._event("loader_failed", version, f"loading in this process instead: {exc}")
            return fetch_verified(self.registry, key, version)

    def _expected_names(self) -> tuple[str, ...] | None:
        if self._features is not None:
            return tuple(self._features.names)
        slot: _Slot | None = getattr(self, "_slot", None)
        if slot is not None:
            return slot.champion.feature_names
        return next(iter(self._cache.values())).feature_names

    def _event(self, kind: EventKind, version: int | None, detail: str) -> None:
        event = RuntimeEvent(self._clock(), kind, version, detail)
        self.events.append(event)
        if self._on_event is not None:
            self._on_event(event)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the polling thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._follow, name=f"alphaops-live-{self.key}", daemon=True
        )
        self._thread.start()

    def _follow(self) -> None:
        listener = self._open_listener() if self._listen else None
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                self.poll()
                # Fixed-rate schedule: the poll's own duration does not stretch the interval.
                if listener is None:
                    self._stop.wait(max(0.0, self.poll_interval_s - (time.monotonic() - started)))
                    continue
                try:
                    self._wait_for_notify(listener, started + self.poll_interval_s)
                except Exception as exc:  # a lost connection must not stop the following
                    self._event("listen_failed", None, f"polling only: {type(exc).__name__}: {exc}")
                    with contextlib.suppress(Exception):
                        listener.close()
                    listener = None
        finally:
            if listener is not None:
                listener.close()

    def _wait_for_notify(self, listener: AliasListener, deadline: float) -> None:
        # An alias move's NOTIFY ends the wait at once; short slices keep close() prompt.
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or listener.wait(min(remaining, _LISTEN_SLICE_S)) is not None:
                return

    def _open_listener(self) -> AliasListener | None:
        try:
            listener = self.registry.listen()
        except Exception as exc:
            self._event("listen_failed", None, f"polling only: {type(exc).__name__}: {exc}")
            return None
        self._event("listening", None, f"woken by NOTIFY, polling every {self.poll_interval_s}s")
        return listener

    def close(self) -> None:
        """Stop the polling thread; predictions keep working on the last models."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 2 * self.poll_interval_s))
            self._thread = None
        with self._poll_lock:
            self._generations.close()
            if self._fetcher is not None:
                self._fetcher.close()

    def __enter__(self) -> LivePredictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LivePredictor({self.key}, serving {self.versions()})"
