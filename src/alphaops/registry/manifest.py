"""The bundle manifest: a versioned, frozen schema that refuses unknown fields.

``manifest.json`` describes everything needed to trust and use a bundle: every file with its
sha256 and size, the features in order with their dtypes, the input kind and shape, the label
rule and class order, the decision rule that turns probabilities into positions, the data
window and fingerprint, seed, library and code versions, metrics, gate results and the
champion the model was trained to replace.

>>> schema = manifest_json_schema()
>>> schema["title"], schema["properties"]["schema_version"]["const"]
('Manifest', 1)
>>> TabularInput(n_features=3).shape
[None, 3]
>>> SequenceInput(lookback=64, n_features=5).shape
[None, 64, 5]
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from alphaops.core.names import normalize_symbol, validate_name

__all__ = [
    "MANIFEST_FILE",
    "MANIFEST_SCHEMA_VERSION",
    "DataWindow",
    "FeatureField",
    "FileEntry",
    "GateResult",
    "InputSpec",
    "LabelSpec",
    "Manifest",
    "Parity",
    "Provenance",
    "ReplacedChampion",
    "SequenceInput",
    "SourceFile",
    "TabularInput",
    "manifest_json_schema",
    "write_manifest_json_schema",
]

MANIFEST_FILE = "manifest.json"
MANIFEST_SCHEMA_VERSION = 1

Scalar = str | int | float | bool | None
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="Lower-case hex sha256.")]


def _canonical_symbol(value: str) -> str:
    # References are upper-cased when parsed, so a lower-case symbol would be unreachable.
    canonical = normalize_symbol(validate_name(value, kind="symbol"))
    if canonical != value:
        raise ValueError(
            f"symbol {value!r} is not in canonical form: write {canonical!r} (upper case, no "
            "exchange separators)"
        )
    return value


Symbol = Annotated[str, AfterValidator(_canonical_symbol)]
ModelType = Annotated[str, AfterValidator(lambda v: validate_name(v, kind="model type"))]


def _relative_path(value: str) -> str:
    parts = value.split("/")
    if value.startswith("/") or "\\" in value or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"file path {value!r} must be relative, '/'-separated, without '..'")
    for part in parts:
        validate_name(part, kind="file name")
    if value == MANIFEST_FILE:
        raise ValueError("the manifest does not list itself")
    return value


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FileEntry(_Frozen):
    """One file of the bundle, relative to the bundle folder, with its checksum and size."""

    path: Annotated[str, AfterValidator(_relative_path)] = Field(
        description="Relative '/'-separated path, e.g. 'model.onnx' or 'native/model.txt'."
    )
    sha256: Sha256
    size: int = Field(ge=0, description="Size in bytes.")


class FeatureField(_Frozen):
    """One model input column, in the order the model expects it."""

    name: str = Field(min_length=1, description="Feature name as produced by the feature pipeline.")
    dtype: Literal["float32", "float64", "int32", "int64", "bool"] = Field(
        "float32", description="Dtype of the feature before it is cast to the model input dtype."
    )


class TabularInput(_Frozen):
    """One row of features per prediction: input shape ``[batch, n_features]``."""

    kind: Literal["tabular"] = "tabular"
    n_features: int = Field(ge=1, description="F, the number of features per row.")
    name: str = Field("input", description="Name of the ONNX graph input.")
    dtype: Literal["float32", "float64"] = Field("float32", description="Model input dtype.")

    @property
    def shape(self) -> list[int | None]:
        """Return the input shape with ``None`` for the batch dimension."""
        return [None, self.n_features]


class SequenceInput(_Frozen):
    """A window of the last T bars per prediction: input shape ``[batch, lookback, n_features]``."""

    kind: Literal["sequence"] = "sequence"
    lookback: int = Field(ge=1, description="T, the number of bars in one window.")
    n_features: int = Field(ge=1, description="F, the number of features per bar.")
    name: str = Field("input", description="Name of the ONNX graph input.")
    dtype: Literal["float32", "float64"] = Field("float32", description="Model input dtype.")

    @property
    def shape(self) -> list[int | None]:
        """Return the input shape with ``None`` for the batch dimension."""
        return [None, self.lookback, self.n_features]


InputSpec = Annotated[TabularInput | SequenceInput, Field(discriminator="kind")]


class LabelSpec(_Frozen):
    """How training labels were made, and the order of the classes in the model output."""

    rule: str = Field(description="Label rule kind, e.g. 'binary' or 'ternary'.")
    horizon: int = Field(ge=1, description="Bars ahead the label looks.")
    threshold: float | None = Field(None, description="Return threshold of the rule, if any.")
    params: dict[str, Scalar] = Field(default_factory=dict, description="Other rule parameters.")
    class_order: list[str] = Field(
        min_length=1, description="Class names in the order of the model's probability columns."
    )


class DataWindow(_Frozen):
    """The training data: its time window and a fingerprint of the exact rows used."""

    start: datetime = Field(description="First bar (inclusive, UTC).")
    end: datetime = Field(description="Last bar (inclusive, UTC).")
    timeframe: str = Field(description="Bar size, e.g. '1h'.")
    fingerprint: Sha256 = Field(description="sha256 of the canonical training data.")
    rows: int | None = Field(None, ge=0, description="Number of training rows.")
    calendar: str = Field(
        "24/7",
        max_length=32,
        description="The market's session calendar the bars follow ('24/7', 'fx' or an "
        "exchange code such as 'XNYS'): a closed session is no gap, in gates and live.",
    )


class GateResult(_Frozen):
    """The outcome of one quality gate (empty list at publish)."""

    name: str
    passed: bool
    value: float | None = None
    threshold: float | None = None
    detail: str = ""


class ReplacedChampion(_Frozen):
    """The champion a model was trained to replace."""

    symbol: Symbol
    model_type: ModelType
    version: int = Field(ge=1)


class SourceFile(_Frozen):
    """One file an imported model was read from, with its sha256 at import time."""

    path: str = Field(min_length=1, description="Path of the source file as it was given.")
    sha256: Sha256
    size: int = Field(ge=0, description="Size in bytes.")


class Parity(_Frozen):
    """The ONNX model against the original model on a golden batch, recorded at import."""

    max_abs_diff: float = Field(ge=0, description="Largest absolute probability difference.")
    rows: int = Field(ge=1, description="Rows in the golden batch.")
    tolerance: float = Field(gt=0, description="The largest difference the import accepted.")
    batch: str = Field(description="Where the golden batch came from.")


class Provenance(_Frozen):
    """Where a model not trained by alphaops came from (absent for alphaops-trained bundles)."""

    kind: Literal["imported"] = Field("imported", description="How the model entered alphaops.")
    layout: str = Field(description="Source layout, e.g. 'legacy', 'freqai', 'mlflow'.")
    source: str = Field(min_length=1, description="The source path or URI.")
    sha256: Sha256 = Field(description="sha256 of the main source file.")
    files: list[SourceFile] = Field(
        default_factory=list, description="Every source file read (model and sidecars)."
    )
    parity: Parity | None = Field(None, description="ONNX vs original model on a golden batch.")
    trusted_code: list[str] = Field(
        default_factory=list,
        description="What ran as trusted code at import ('pickle' in the sandboxed child, "
        "'architecture module:Class'); empty when nothing ran.",
    )


class Manifest(_Frozen):
    """``manifest.json``: everything needed to verify and use one bundle (schema version 1)."""

    schema_version: Literal[1] = Field(1, description="Manifest schema version.")
    symbol: Symbol = Field(description="Trading symbol, e.g. 'BTCUSDT'.")
    model_type: ModelType = Field(description="Model family, e.g. 'lightgbm'.")
    created_at: datetime = Field(description="When the bundle was built (UTC).")
    files: list[FileEntry] = Field(description="Every file of the bundle except this manifest.")
    features: list[FeatureField] = Field(min_length=1, description="Model inputs in order.")
    input: InputSpec = Field(description="Input kind and shape.")
    label: LabelSpec
    data: DataWindow
    seed: int = Field(description="Random seed used for training.")
    library_versions: dict[str, str] = Field(
        default_factory=dict, description="Versions of the libraries that built the model."
    )
    code_version: str = Field(description="alphaops version (and git revision) that built it.")
    config_hash: str | None = Field(None, description="Hash of the alphaops config used.")
    params: dict[str, Scalar] = Field(default_factory=dict, description="Hyper-parameters.")
    metrics: dict[str, float] = Field(default_factory=dict, description="Validation metrics.")
    feature_spec: dict[str, Any] | None = Field(
        None,
        description="The feature spec the features were computed with (alphaops FeatureSpec "
        "JSON); None for bundles that bring ready feature rows.",
    )
    decision: dict[str, Any] | None = Field(
        None,
        description="The decision rule that turns the probabilities into positions (alphaops "
        "DecisionRule JSON: min_confidence, min_hold_bars, min_edge_over_cost, "
        "round_trip_cost_bps, typical_move); None for bundles trained before rules, which "
        "trade the argmax of every bar.",
    )
    gates: list[GateResult] = Field(default_factory=list, description="Gate results.")
    replaces: ReplacedChampion | None = Field(
        None, description="The champion this model was trained to replace."
    )
    provenance: Provenance | None = Field(
        None, description="Set on imported models: source, checksums and parity at import."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        paths = [f.path for f in self.files]
        if len(paths) != len(set(paths)):
            raise ValueError("files lists the same path twice")
        for required in ("model.onnx", "reference.npz"):
            if required not in paths:
                raise ValueError(f"files must list {required!r}")
        if self.input.n_features != len(self.features):
            raise ValueError(
                f"input.n_features={self.input.n_features} but {len(self.features)} features listed"
            )
        return self

    def file(self, path: str) -> FileEntry | None:
        """Return the entry for ``path``, or ``None`` when it is not listed."""
        return next((f for f in self.files if f.path == path), None)

    def to_json(self) -> str:
        """Return the canonical JSON text written to ``manifest.json``."""
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def manifest_json_schema() -> dict[str, Any]:
    """Return the JSON Schema of :class:`Manifest` (what ``docs/manifest.schema.json`` holds)."""
    schema = Manifest.model_json_schema()
    schema["$id"] = "https://alphaops.dev/schemas/manifest-v1.json"
    return schema


def write_manifest_json_schema(path: Path) -> Path:
    """Write the manifest JSON Schema to ``path`` and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest_json_schema(), indent=2, sort_keys=True) + "\n")
    return path
