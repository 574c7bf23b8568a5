"""Copy an MLflow registered model into alphaops: versions, artifacts and aliases.

Each MLflow version's artifacts are downloaded and its ``MLmodel`` read (YAML, safe loader).
The ``onnx`` flavour imports natively (no pickle); ``sklearn`` models saved as pickle go
through the legacy path (``trust_pickle``, the sandboxed child). Features and classes come
from the version's (or the registered model's) tags ``features`` and ``classes`` (a JSON list
or comma-separated), or from a column-based signature; the symbol and model type from tags
``symbol``/``model_type`` or the caller.

Aliases are copied after every version is in. ``champion``, ``latest``, ``previous`` and
``challenger`` are alphaops's own and move only through gates (fail closed), so MLflow's
become user aliases ``mlflow-<alias>``; other aliases keep their names. Every version and
alias is converted and checked before the first one is published.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from alphaops.core.errors import (
    ExternalServiceError,
    InvalidNameError,
    NotFoundError,
    UsageError,
)
from alphaops.core.names import normalize_symbol, validate_name
from alphaops.importing._discover import Found
from alphaops.importing._legacy import GoldenData, ImportOptions, convert_pickle
from alphaops.importing._publish import Converted
from alphaops.importing._run import ImportedModel, import_converted
from alphaops.registry import Registry
from alphaops.registry.refs import CHALLENGER, RESERVED_ALIASES

__all__ = ["MlflowImport", "MlflowVersion", "import_mlflow", "plan_mlflow"]

_GATED = RESERVED_ALIASES | {CHALLENGER}


@dataclass(frozen=True)
class MlflowVersion:
    """One MLflow model version and how it maps to alphaops."""

    name: str
    version: int
    source: str
    flavor: str
    symbol: str
    model_type: str
    features: tuple[str, ...]
    classes: tuple[str, ...] | None
    aliases: tuple[str, ...]
    problems: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready description (for the dry run)."""
        return {
            "mlflow": f"{self.name}/{self.version}",
            "source": self.source,
            "flavor": self.flavor,
            "maps_to": f"{self.symbol}/{self.model_type}",
            "features": list(self.features),
            "classes": None if self.classes is None else list(self.classes),
            "aliases": {a: alias_in_alphaops(a) for a in self.aliases},
            "problems": list(self.problems),
        }


@dataclass(frozen=True)
class MlflowImport:
    """The result: the imported versions and the aliases set."""

    versions: list[ImportedModel]
    mapping: dict[int, str]
    aliases: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready description."""
        return {
            "imported": [v.to_dict() for v in self.versions],
            "versions": {str(k): v for k, v in self.mapping.items()},
            "aliases": self.aliases,
        }


def alias_in_alphaops(alias: str) -> str:
    """Return the alphaops alias an MLflow alias becomes.

    >>> alias_in_alphaops("champion"), alias_in_alphaops("shadow")
    ('mlflow-champion', 'shadow')
    """
    return f"mlflow-{alias}" if alias in _GATED else alias


def _client(tracking_uri: str) -> Any:
    try:
        from mlflow import MlflowClient
    except ImportError as exc:
        raise UsageError(
            "importing from MLflow needs the MLflow client",
            fix="pip install mlflow-skinny (or 'alphaops[dev]')",
        ) from exc
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _listed(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    text = str(value).strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = [part.strip() for part in text.split(",") if part.strip()]
    if not isinstance(parsed, list):
        return None
    return tuple(str(v) for v in parsed)


def _download(client: Any, tracking_uri: str, name: str, version: int, dest: Path) -> Path:
    import mlflow.artifacts

    try:
        location = client.get_model_version_download_uri(name, str(version))
        return Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=location, dst_path=str(dest), tracking_uri=tracking_uri
            )
        )
    except Exception as exc:  # MLflow raises its own exception tree for stores and I/O
        raise ExternalServiceError(
            f"cannot download the artifacts of MLflow {name}/{version} ({exc})",
            fix="check the tracking URI and that the artifact store is reachable",
        ) from exc


def _mlmodel(folder: Path) -> dict[str, Any]:
    path = folder / "MLmodel"
    if not path.is_file():
        raise NotFoundError(f"{folder} has no MLmodel file", fix="log the model with MLflow")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def _signature_names(mlmodel: Mapping[str, Any]) -> tuple[str, ...] | None:
    raw = (mlmodel.get("signature") or {}).get("inputs")
    try:
        inputs = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        return None
    names = [i.get("name") for i in inputs or [] if isinstance(i, dict)]
    if names and all(isinstance(n, str) for n in names) and len(names) > 1:
        return tuple(str(n) for n in names)
    return None


def _versions(
    tracking_uri: str, name: str, symbol: str | None, model_type: str | None, workdir: Path
) -> list[tuple[MlflowVersion, Path]]:
    client = _client(tracking_uri)
    try:
        registered = client.get_registered_model(name)
        found = client.search_model_versions(f"name='{name}'")
    except Exception as exc:  # MLflow's RestException / MlflowException
        raise NotFoundError(
            f"MLflow at {tracking_uri} has no registered model {name!r} ({exc})",
            fix="check --tracking-uri and --name (mlflow models are case-sensitive)",
        ) from exc
    by_version: dict[int, list[str]] = {}
    for alias, number in (registered.aliases or {}).items():
        by_version.setdefault(int(number), []).append(str(alias))
    model_tags = dict(registered.tags or {})
    result = []
    for mv in sorted(found, key=lambda v: int(v.version)):
        number = int(mv.version)
        tags = model_tags | dict(mv.tags or {})
        folder = _download(client, tracking_uri, name, number, workdir / f"v{number}")
        mlmodel = _mlmodel(folder)
        flavors = mlmodel.get("flavors") or {}
        flavor = "onnx" if "onnx" in flavors else ("sklearn" if "sklearn" in flavors else "")
        problems = [] if flavor else [f"unsupported flavours {sorted(flavors)}"]
        features = _listed(tags.get("features")) or _signature_names(mlmodel) or ()
        if not features:
            problems.append("no 'features' tag or column signature names the inputs")
        try:
            sym = normalize_symbol(str(tags.get("symbol") or symbol or ""))
            kind = validate_name(
                str(tags.get("model_type") or model_type or name).lower(), kind="model type"
            )
        except InvalidNameError as exc:
            raise UsageError(
                f"MLflow {name}/{number} does not name a valid symbol/model type ({exc.message})",
                fix="pass --symbol and --model-type, or tag the model 'symbol'/'model_type'",
            ) from exc
        version = MlflowVersion(
            name=name,
            version=number,
            source=str(mv.source),
            flavor=flavor or ",".join(sorted(flavors)),
            symbol=sym,
            model_type=kind,
            features=features,
            classes=_listed(tags.get("classes")),
            aliases=tuple(sorted(by_version.get(number, []))),
            problems=tuple(problems),
        )
        result.append((version, folder))
    return result


def plan_mlflow(
    tracking_uri: str, name: str, *, symbol: str | None = None, model_type: str | None = None
) -> list[MlflowVersion]:
    """Return how each MLflow version would map (downloads artifacts; loads no model)."""
    with tempfile.TemporaryDirectory(prefix="alphaops-mlflow-") as tmp:
        return [v for v, _ in _versions(tracking_uri, name, symbol, model_type, Path(tmp))]


def _convert(
    version: MlflowVersion, folder: Path, options: ImportOptions, data: GoldenData
) -> Converted:
    from alphaops.importing._flat_onnx import convert_onnx

    if version.problems:
        raise UsageError(
            f"MLflow {version.name}/{version.version}: {'; '.join(version.problems)}",
            fix="tag the version with 'features' (and 'classes'), or log it as ONNX/sklearn",
        )
    mlmodel = _mlmodel(folder)
    if version.flavor == "onnx":
        metadata = folder / "alphaops_metadata.json"
        metadata.write_text(
            json.dumps({"features": list(version.features), "classes": version.classes})
        )
        model = folder / str(mlmodel["flavors"]["onnx"].get("data", "model.onnx"))
        found = Found(
            "mlflow", version.symbol, version.model_type, "onnx", model, metadata=metadata
        )
        converted = convert_onnx(found, options, data)
    else:
        columns = folder / "alphaops_features.json"
        columns.write_text(json.dumps(list(version.features)))
        model = folder / str(mlmodel["flavors"]["sklearn"].get("pickled_model", "model.pkl"))
        found = Found("mlflow", version.symbol, version.model_type, "pickle", model, columns)
        opts = options
        if options.classes is None and version.classes is not None:
            opts = options.model_copy(update={"classes": version.classes})
        converted = convert_pickle(found, opts, data)
    return replace(
        converted,
        source=f"mlflow:{version.name}/{version.version}",
        params=dict(converted.params or {})
        | {"mlflow_name": version.name, "mlflow_version": version.version},
    )


def import_mlflow(
    tracking_uri: str,
    name: str,
    options: ImportOptions,
    registry: Registry,
    data: GoldenData,
    *,
    symbol: str | None = None,
    model_type: str | None = None,
) -> MlflowImport:
    """Import every version of MLflow model ``name`` (oldest first), then copy its aliases."""
    with tempfile.TemporaryDirectory(prefix="alphaops-mlflow-") as tmp:
        pairs = _versions(tracking_uri, name, symbol, model_type, Path(tmp))
        converted = [(v, _convert(v, folder, options, data)) for v, folder in pairs]
    imported: list[ImportedModel] = []
    mapping: dict[int, str] = {}
    aliases: dict[str, str] = {}
    for version, model in converted:
        done = import_converted(model, registry)
        imported.append(done)
        mapping[version.version] = done.version.ref
        for alias in version.aliases:
            target = alias_in_alphaops(alias)
            registry.set_alias(
                done.version.key,
                target,
                done.version.version,
                reason=f"copied from MLflow alias {alias!r} of {name}/{version.version}",
            )
            aliases[f"{alias}@{version.version}"] = f"{done.version.key}@{target}"
    return MlflowImport(imported, mapping, aliases)
