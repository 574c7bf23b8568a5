"""Match a legacy model's feature list to alphaops feature kinds, or keep it as ready input.

A column named like an alphaops feature (``rsi_14``, ``macd_12_26_9``, ``returns_4``,
``bollinger_pctb_20_2`` …) maps to that feature, checked by rebuilding the name from the
parsed feature. When every column maps, the import records a :class:`FeatureSpec` and the
model is served from candles; otherwise it keeps the columns as *ready-feature* input (the bot
sends the feature rows).

>>> match_features(["rsi_14", "returns_4"]).spec.names
('rsi_14', 'returns_4')
>>> m = match_features(["rsi_14", "my_signal"])
>>> m.spec is None, m.unmatched
(True, ('my_signal',))
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from alphaops.core.errors import IncompatibleModelError, SpecError
from alphaops.features import FeatureSpec
from alphaops.features.spec import (
    ATR,
    MACD,
    RSI,
    BollingerPctB,
    Feature,
    MACross,
    Returns,
    Volatility,
    VolumeZScore,
)

__all__ = ["FeatureMatch", "FeatureMode", "check_model_columns", "match_features"]

FeatureMode = Literal["auto", "alphaops", "ready"]
"""``auto``: a spec when every column maps, else ready input; ``alphaops``: every column must
map (else a typed error naming the others); ``ready``: always ready-feature input."""

_PATTERNS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], Any]], ...] = (
    (re.compile(r"rsi_(\d+)"), lambda m: RSI(period=int(m[1]))),
    (
        re.compile(r"ma_cross_(sma|ema)_(\d+)_(\d+)"),
        lambda m: MACross(ma=m[1], fast=int(m[2]), slow=int(m[3])),
    ),
    (re.compile(r"volatility_(\d+)"), lambda m: Volatility(window=int(m[1]))),
    (re.compile(r"returns_(\d+)"), lambda m: Returns(bars=int(m[1]))),
    (re.compile(r"atr_(\d+)"), lambda m: ATR(period=int(m[1]))),
    (
        re.compile(r"macd_(\d+)_(\d+)_(\d+)"),
        lambda m: MACD(fast=int(m[1]), slow=int(m[2]), signal=int(m[3])),
    ),
    (
        re.compile(r"bollinger_pctb_(\d+)_(\d+(?:p\d+)?)"),
        lambda m: BollingerPctB(period=int(m[1]), num_std=float(m[2].replace("p", "."))),
    ),
    (re.compile(r"volume_zscore_(\d+)"), lambda m: VolumeZScore(window=int(m[1]))),
)


@dataclass(frozen=True)
class FeatureMatch:
    """The columns in model order, and the spec when every one is an alphaops feature."""

    columns: tuple[str, ...]
    spec: FeatureSpec | None
    unmatched: tuple[str, ...]

    @property
    def input_kind(self) -> str:
        """Return ``'alphaops features'`` or ``'ready features'`` (for dry-run output)."""
        return "alphaops features" if self.spec is not None else "ready features"


def _feature_of(name: str) -> Feature | None:
    for pattern, build in _PATTERNS:
        found = pattern.fullmatch(name)
        if found is None:
            continue
        try:
            feature: Feature = build(found)
        except (SpecError, ValueError):
            return None
        return feature if feature.name == name else None
    return None


def match_features(
    columns: Sequence[str], *, mode: FeatureMode = "auto", where: str = "the model"
) -> FeatureMatch:
    """Map ``columns`` to alphaops features (see :data:`FeatureMode`)."""
    names = tuple(str(c) for c in columns)
    if not names:
        raise IncompatibleModelError(
            f"{where} lists no feature columns", fix="pass the model's feature-list sidecar"
        )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise IncompatibleModelError(
            f"{where} lists the feature columns {repeated} more than once",
            fix="fix the feature-list sidecar",
            columns=repeated,
        )
    features = [_feature_of(n) for n in names]
    unmatched = tuple(n for n, f in zip(names, features, strict=True) if f is None)
    if mode == "alphaops" and unmatched:
        raise IncompatibleModelError(
            f"{where}: the columns {list(unmatched)} are not alphaops features (known kinds: "
            "rsi_N, ma_cross_sma|ema_F_S, volatility_N, returns_N, atr_N, macd_F_S_G, "
            "bollinger_pctb_N_K, volume_zscore_N)",
            fix="rename them to alphaops feature names, or import with --features ready and "
            "send ready feature rows",
            columns=list(unmatched),
        )
    if mode == "ready" or unmatched:
        return FeatureMatch(names, None, unmatched)
    spec = FeatureSpec(features=tuple(f for f in features if f is not None))
    return FeatureMatch(names, spec, ())


def check_model_columns(
    sidecar: Sequence[str], model_columns: Sequence[str] | None, *, where: str
) -> None:
    """Refuse a feature sidecar that disagrees with the columns the model was fitted on."""
    if model_columns is None or list(sidecar) == list(model_columns):
        return
    missing = [c for c in model_columns if c not in sidecar]
    extra = [c for c in sidecar if c not in model_columns]
    detail = (
        f"missing {missing}, unexpected {extra}"
        if missing or extra
        else "the same columns in another order"
    )
    raise IncompatibleModelError(
        f"{where}: the feature sidecar does not match the columns the model was fitted on "
        f"({detail})",
        fix="pass the feature list saved with this model",
        missing=missing,
        unexpected=extra,
    )
