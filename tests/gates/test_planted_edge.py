"""The gates let a model with a real edge through, and block every planted defect.

The market is real ETHUSDT 1h data (the last 8,000 bars up to 2025-06-30, no gaps) with a
planted, learnable edge: each bar's log return gets an extra drift

    drift[t] = EDGE_STRENGTH * tanh(z[t-1]),   z = 24-bar return / (24-bar std of 1-bar log returns * sqrt(24))

computed from the planted closes up to the previous bar, so it is a time-series momentum the
default feature spec sees (``returns_24`` and ``volatility_24``). Open, high and low move with
their bar's close, so candles stay consistent. With EDGE_STRENGTH = 20 bps the mean |drift| is about
15 bps a bar against a per-bar volatility of about 80 bps: real noise, a modest signal. An
oracle that knows the drift (long when it is positive, flat otherwise, paying 15 bps per unit
traded like the gate) earns several hundred percent on the gate window; a model trained on the
first 6,000 bars must find part of it.

A default LightGBM (default features, the default balanced ternary 4-bar labels, its default
decision rule, 60 rounds) is trained through
the user's path (``services.training.train_models``), published to a real registry and gated
through ``services.gates.gate_run`` on the 2,000 bars after its training data: every gate must
pass. Then, on the same market and window, each planted defect must be blocked:

- constant output, and a model whose argmax is always BUY: the quality gate;
- the good model with its SELL and BUY columns swapped (inverted signal): it loses money
  after costs (backtest) and ranks classes worse than chance (validation);
- random logistic regressions over the default features: they collapse onto one class;
- coin flips (random output that looks healthy to the quality gate): they lose after costs;
- a model reading a custom feature that returns the next 4 bars' return: its backtest is
  superb, and the lookahead audit blocks it. (The trainer already refuses to train on that
  feature; the model is built by hand, as an imported one would be.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from tests.gates.conftest import (
    EDGE_STRENGTH,
    EDGE_SYMBOL,
    EDGE_TRAIN_BARS,
    MOMENTUM_BARS,
    Market,
    PlantedMarket,
    feature_scale,
    planted_onnx,
    user_code,
    write_planted,
)

from alphaops.core.config import AlphaOpsConfig, load_config
from alphaops.core.errors import GateFailedError
from alphaops.features import CustomFeature, FeatureSpec, LabelRule
from alphaops.gates import BacktestPolicy, simulate
from alphaops.registry import Bundle, write_bundle
from alphaops.registry.testing import logistic_regression_onnx
from alphaops.services import gates as svc
from alphaops.services._common import open_configured_registry
from alphaops.services.training import make_jobs, train_models
from alphaops.training.fanout import JobOutcome

LABEL = LabelRule.balanced("ternary", horizon=4)  # the default: volatility-scaled, balanced
PARAMS = {"n_estimators": 60, "early_stopping_rounds": 0}
RANDOM_SEEDS = (0, 1, 2)
# A logistic regression over three coin flips (uniform on [-0.5, 0.5)): random output,
# independent of the market, redrawn every bar.
COIN_ONNX = logistic_regression_onnx(6 * np.eye(3, dtype=np.float32), np.zeros(3, np.float32))

USER_MODULE = "planted_edge_features"
USER_SOURCE = '''
import numpy as np


def coin(bars, salt=0):
    """A coin flip per bar, uniform on [-0.5, 0.5): a hash of the bar's close bits."""
    bits = np.asarray(bars.close).view(np.uint64) + np.uint64(salt * 0x9E3779B97F4A7C15 % 2**64)
    mixed = (bits ^ (bits >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    mixed = (mixed ^ (mixed >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    mixed = mixed ^ (mixed >> np.uint64(31))
    return (mixed >> np.uint64(11)).astype(np.float64) / 2.0**53 - 0.5


def future_return(bars, horizon=4):
    """The return of the next ``horizon`` bars: a feature that reads the future."""
    close = np.asarray(bars.close)
    out = np.full(close.size, np.nan)
    out[:-horizon] = close[horizon:] / close[:-horizon] - 1.0
    return out
'''


def oracle(planted: PlantedMarket, policy: BacktestPolicy) -> dict[str, float]:
    """Backtest the perfect-knowledge strategy on the gate window: long over bar t+1 when its
    planted drift (known at the close of t) is positive, flat otherwise, with the gate's costs."""
    close = planted.close[EDGE_TRAIN_BARS:]
    positions = (planted.drift[EDGE_TRAIN_BARS + 1 :] > 0).astype(np.float64)
    positions = np.concatenate([positions, [0.0]])
    cost = (policy.fee_bps + policy.slippage_bps) / 10_000
    return simulate(close, positions, cost=cost, periods_per_year=8760).metrics


@pytest.fixture(scope="module")
def user_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    with user_code(tmp_path_factory.mktemp("user_code"), USER_MODULE, USER_SOURCE) as module:
        yield module


def inverted(bundle: Bundle, folder: Path) -> Bundle:
    """The same ONNX model with its SELL and BUY columns swapped (a column mix-up)."""
    manifest = json.loads((bundle.path / "manifest.json").read_text())
    for key in ("files", "created_at"):
        manifest.pop(key)
    manifest["model_type"] = "inverted"
    assert manifest["label"]["class_order"] == ["SELL", "HOLD", "BUY"]
    manifest["label"]["class_order"] = ["BUY", "HOLD", "SELL"]
    reference = np.load(bundle.path / "reference.npz")

    def under(sub: str) -> dict[str, bytes]:
        base = bundle.path / sub
        return {str(p.relative_to(base)): p.read_bytes() for p in base.rglob("*") if p.is_file()}

    return write_bundle(
        folder,
        model_onnx=(bundle.path / "model.onnx").read_bytes(),
        reference_inputs=reference["inputs"],
        reference_expected=reference["expected"],
        manifest=manifest,
        native=under("native"),
        reports=under("reports"),
    )


@dataclass(frozen=True)
class Gated:
    config: AlphaOpsConfig
    runs: dict[str, svc.GateRunSummary]
    leak_training: JobOutcome


def _train(config: AlphaOpsConfig, market: Market, features: FeatureSpec | None) -> JobOutcome:
    jobs = make_jobs(
        [EDGE_SYMBOL],
        "lightgbm",
        timeframe="1h",
        label=LABEL,
        features=features,
        params=PARAMS,
        seed=7,
    )
    summary = train_models(config, jobs, executor="sequential", candles={EDGE_SYMBOL: market.train})
    return summary.outcomes[0]


def leaked_onnx(features: FeatureSpec, scale: npt.NDArray[np.float64]) -> bytes:
    """A logistic regression over the default features and the leak: BUY when the next 4
    bars rise, SELL when they fall (scaled by the leak's std), plus small random weights."""
    rng = np.random.default_rng(5)
    weights = 0.05 * rng.normal(size=(len(scale), 3)) / scale[:, None]
    weights[-1] = np.array([-3.0, 0.0, 3.0]) / scale[-1]
    assert features.names[-1] == "future_4"
    return logistic_regression_onnx(weights.astype(np.float32), np.zeros(3, np.float32))


@pytest.fixture(scope="module")
def gated(
    tmp_path_factory: pytest.TempPathFactory, planted_market: PlantedMarket, user_module: object
) -> Gated:
    """Train, build, publish and gate the good model and every defect, in a fresh home."""
    market = planted_market.market
    config = load_config(environ={}, home=tmp_path_factory.mktemp("planted-edge") / "home")
    good = _train(config, market, None)
    assert good.status == "published", good.error
    assert good.ref is not None
    refs = {"good": good.ref}
    leak = CustomFeature(path=f"{USER_MODULE}:future_return", warmup=2, column="future_4")
    leaky = FeatureSpec(features=(*FeatureSpec.default().features, leak))
    refused = _train(config, market, leaky)
    features = FeatureSpec.default()
    scale = feature_scale(market, features)
    folders = tmp_path_factory.mktemp("defects")
    with open_configured_registry(config) as registry:
        bundles = {
            "inverted": inverted(registry.load(good.ref), folders / "inverted"),
            "leaked_feature": write_planted(
                folders / "leaked_feature",
                leaked_onnx(leaky, feature_scale(market, leaky)),
                market,
                model_type="leaked-feature",
                features=leaky,
                label=LABEL,
            ),
        }
        kinds = [("constant", "constant", 0), ("always_buy", "always_buy", 0)]
        kinds += [(f"random_{seed}", "random", seed) for seed in RANDOM_SEEDS]
        for seed in RANDOM_SEEDS:
            coins = FeatureSpec(
                features=tuple(
                    CustomFeature(path=f"{USER_MODULE}:coin", warmup=1, params={"salt": salt})
                    for salt in range(3 * seed, 3 * seed + 3)
                )
            )
            bundles[f"coin_flip_{seed}"] = write_planted(
                folders / f"coin_flip_{seed}",
                COIN_ONNX,
                market,
                model_type=f"coin-flip-{seed}",
                features=coins,
                label=LABEL,
            )
        for name, kind, seed in kinds:
            bundles[name] = write_planted(
                folders / name,
                planted_onnx(kind, scale, seed=seed),
                market,
                model_type=name.replace("_", "-"),
                features=features,
                label=LABEL,
            )
        for name, bundle in bundles.items():
            refs[name] = registry.publish(bundle).ref
    runs = {
        name: svc.gate_run(config, ref, champion=None, candles=market.candles)
        for name, ref in refs.items()
    }
    return Gated(config, runs, refused)


def _failed(summary: svc.GateRunSummary) -> set[str]:
    return {f"{g.gate}.{c.name}" for g in summary.run.record.gates for c in g.failed}


def test_the_planted_edge_pays_after_costs_on_the_gate_window(
    planted_market: PlantedMarket,
) -> None:
    drift = planted_market.drift[MOMENTUM_BARS + 1 :]
    assert np.mean(np.abs(drift)) == pytest.approx(0.75 * EDGE_STRENGTH, rel=0.1)
    best = oracle(planted_market, BacktestPolicy())
    assert best["total_return"] > 1.0  # more than doubles after 15 bps per unit traded
    assert best["cost_paid"] < 0.2 * best["gross_return"]
    assert best["sharpe"] > 5


def test_a_default_lightgbm_that_learned_the_edge_passes_every_gate(
    gated: Gated, planted_market: PlantedMarket
) -> None:
    summary = gated.runs["good"]
    record = summary.run.record
    assert summary.passed, sorted(_failed(summary))
    assert [g.gate for g in record.gates] == ["quality", "validation", "backtest", "lookahead"]
    # judged on the bars after its training data only
    assert int(record.window_start.timestamp() * 1000) == planted_market.market.window_start_ms
    backtest = record.gate("backtest")
    assert backtest.value("beats_flat") is not None
    assert backtest.value("beats_flat") > 0.2  # type: ignore[operator]
    assert backtest.value("psr") >= 0.9  # type: ignore[operator]
    assert backtest.value("dsr") >= 0.5  # type: ignore[operator]
    candidate = summary.run.backtests["candidate"].metrics
    assert candidate["gross_return"] > candidate["total_return"] > 0
    assert candidate["cost_paid"] > 0
    report = summary.reports["md"].read_text()
    assert "| net return (after costs) |" in report
    assert "## Sharpe deflation (candidate)" in report


DEFECTS = {
    "constant": {"quality.constant_output"},
    "always_buy": {"quality.majority_share"},
    "inverted": {"backtest.beats_flat", "validation.balanced_accuracy"},
    **{f"coin_flip_{seed}": {"backtest.beats_flat", "backtest.psr"} for seed in RANDOM_SEEDS},
    # Random weights over unscaled features saturate: one class takes most bars.
    **{f"random_{seed}": {"quality.majority_share"} for seed in RANDOM_SEEDS},
    "leaked_feature": {"lookahead.mismatched_bars"},
}


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_every_planted_defect_is_blocked_and_cannot_be_promoted(gated: Gated, defect: str) -> None:
    summary = gated.runs[defect]
    assert not summary.passed
    assert DEFECTS[defect] <= _failed(summary), (defect, sorted(_failed(summary)))
    with pytest.raises(GateFailedError):
        svc.check_promotion(gated.config, summary.version.ref)


def test_the_inverted_model_loses_what_the_good_model_earns(gated: Gated) -> None:
    good = gated.runs["good"].run.backtests["candidate"].metrics
    bad = gated.runs["inverted"].run.backtests["candidate"].metrics
    assert good["gross_return"] > 0 > bad["gross_return"]
    assert bad["psr"] < 0.5


def test_the_leaked_model_would_pass_on_its_backtest_alone(gated: Gated) -> None:
    # Why the lookahead audit exists: reading the future makes every figure look superb. The
    # trainer refuses the leaking feature itself, so this model was built by hand (as an
    # imported model would be); the gates catch it all the same.
    assert gated.leak_training.status == "failed"
    assert "future_4" in json.dumps(gated.leak_training.error)
    record = gated.runs["leaked_feature"].run.record
    assert record.gate("backtest").passed
    assert not record.gate("lookahead").passed


@pytest.mark.parametrize("seed", RANDOM_SEEDS)
def test_random_output_looks_healthy_to_the_quality_gate_and_loses_after_costs(
    gated: Gated, seed: int
) -> None:
    record = gated.runs[f"coin_flip_{seed}"].run.record
    assert record.gate("quality").passed  # varied, balanced, confident: not degenerate
    metrics = record.gate("backtest").data["candidate"]
    assert metrics["turnover"] > 0.3
    assert metrics["total_return"] < 0 < metrics["cost_paid"]
    assert metrics["cost_paid"] > 1.0  # over 100% of equity paid in costs
