"""``alphaops import legacy|freqai|mlflow`` and ``alphaops export``: bring models in, and out.

Services and heavy libraries are imported inside the commands, so ``alphaops -h`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from alphaops.cli._context import CliContext, get_context

if TYPE_CHECKING:
    from alphaops.importing import ImportedModel, ImportOptions, PlannedImport

__all__ = ["app", "export"]

app = typer.Typer(
    help="Import existing models (legacy files, FreqAI, MLflow) as candidate versions.",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Print what was found and how it maps; change nothing.")
]
TrustOpt = Annotated[
    bool,
    typer.Option(
        "--trust-pickle",
        help="Load pickle/joblib files (in a sandboxed child process). Only for files you trust: "
        "a pickle runs code when loaded.",
    ),
]
FeaturesOpt = Annotated[
    str,
    typer.Option(
        "--features",
        help="auto: alphaops features when every column maps, else ready rows; alphaops: "
        "require the mapping; ready: the bot sends feature rows.",
    ),
]
ClassesOpt = Annotated[
    str | None,
    typer.Option("--classes", help="Action of each class in model order, e.g. SELL,HOLD,BUY."),
]
TimeframeOpt = Annotated[str, typer.Option("--timeframe", help="Bar size of the model.")]
HorizonOpt = Annotated[int, typer.Option("--horizon", help="Bars ahead the model predicts.")]
CandlesOpt = Annotated[
    Path | None,
    typer.Option("--candles", help="Candle file for the golden batch (default: the data store)."),
]
GoldenOpt = Annotated[
    Path | None,
    typer.Option("--golden", help="Parquet/CSV of ready feature rows for the golden batch."),
]
ToleranceOpt = Annotated[
    float, typer.Option("--parity-tolerance", help="Largest ONNX vs original difference.")
]
LookbackOpt = Annotated[
    int | None, typer.Option("--lookback", help="Window length (bars) of sequence models.")
]
ArchitectureOpt = Annotated[
    str | None,
    typer.Option(
        "--architecture",
        help="module:Class of the torch network a state dict belongs to. It is imported, so it "
        "runs as trusted code (recorded in the manifest).",
    ),
]
DbOpt = Annotated[str | None, typer.Option("--db", help="Registry database URL.")]
ArtifactsOpt = Annotated[
    str | None, typer.Option("--artifacts", help="Artifact folder or s3://bucket/prefix.")
]


def _options(
    *,
    trust_pickle: bool,
    features: str,
    classes: str | None,
    timeframe: str,
    horizon: int,
    tolerance: float,
    lookback: int | None = None,
    architecture: str | None = None,
) -> ImportOptions:
    from pydantic import ValidationError

    from alphaops.core.errors import UsageError
    from alphaops.importing import ImportOptions

    try:
        return ImportOptions(
            trust_pickle=trust_pickle,
            features=features,
            classes=None if classes is None else tuple(c for c in classes.split(",") if c),
            timeframe=timeframe,
            horizon=horizon,
            parity_tolerance=tolerance,
            lookback=lookback,
            architecture=architecture,
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UsageError(
            f"invalid import options: {problems}", fix="see alphaops import legacy --help"
        ) from exc


def render_plan(cli: CliContext, plans: list[PlannedImport], as_json: bool) -> None:
    """Print a dry-run plan as a table (or JSON)."""
    if as_json:
        cli.print_json({"dry_run": True, "models": [p.to_dict() for p in plans]})
        return
    table = Table("source", "maps to", "format", "input", "features", "classes", "notes")
    for plan in plans:
        data = plan.to_dict()
        features = data["features"]
        shown = "?" if features is None else f"{len(features)}: {', '.join(features[:4])}"
        if features is not None and len(features) > 4:
            shown += ", …"
        extras = [f"scaler {Path(data['scaler']).name}"] if data["scaler"] else []
        if data["version"]:
            extras.append(f"version {data['version']}{' (latest)' if data['latest'] else ''}")
        table.add_row(
            Path(data["source"]).name,
            f"{data['symbol']}/{data['model_type']}",
            data["format"],
            data["input"],
            shown,
            ",".join(data["classes"] or []) or "from the model",
            "; ".join(extras + data["problems"]) or "ok",
        )
    cli.console.print(table)
    cli.console.print("dry run: nothing was loaded or imported")


def render_imported(cli: CliContext, imported: list[ImportedModel], as_json: bool) -> None:
    """Print the imported versions (candidates: no alias moved)."""
    if as_json:
        cli.print_json({"imported": [m.to_dict() for m in imported]})
        return
    for model in imported:
        data = model.to_dict()
        cli.console.print(
            f"imported {Path(data['source']).name} as {data['ref']} (candidate; parity max diff "
            f"{data['parity_max_abs_diff']:.2g} on {data['parity_rows']} rows)"
        )
    if imported:
        cli.console.print("run the gates before promoting: alphaops gate run REF")


@app.command("legacy")
def legacy(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Folder (or file) of the legacy models.")],
    dry_run: DryRunOpt = False,
    trust_pickle: TrustOpt = False,
    features: FeaturesOpt = "auto",
    classes: ClassesOpt = None,
    timeframe: TimeframeOpt = "1h",
    horizon: HorizonOpt = 1,
    candles: CandlesOpt = None,
    golden: GoldenOpt = None,
    tolerance: ToleranceOpt = 1e-4,
    lookback: LookbackOpt = None,
    architecture: ArchitectureOpt = None,
    db: DbOpt = None,
    artifacts: ArtifactsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import flat models/ folders (.pkl + _features.pkl, .pth + _scaler.pkl, .onnx +
    _metadata.json) and SYMBOL/TYPE/VERSION trees as candidate versions."""
    from alphaops.services import importing as svc

    cli = get_context(ctx)
    options = _options(
        trust_pickle=trust_pickle,
        features=features,
        classes=classes,
        timeframe=timeframe,
        horizon=horizon,
        tolerance=tolerance,
        lookback=lookback,
        architecture=architecture,
    )
    if dry_run:
        render_plan(cli, svc.plan_legacy_import(path, options), as_json)
        return
    imported = svc.import_legacy_models(
        cli.config,
        path,
        options,
        candles_file=candles,
        rows_file=golden,
        database_url=db,
        artifacts=artifacts,
    )
    render_imported(cli, imported, as_json)


@app.command("freqai")
def freqai(
    ctx: typer.Context,
    path: Annotated[
        Path, typer.Argument(help="user_data/models/<identifier> or one sub-train-* folder.")
    ],
    dry_run: DryRunOpt = False,
    trust_pickle: TrustOpt = False,
    classes: ClassesOpt = None,
    timeframe: TimeframeOpt = "1h",
    horizon: HorizonOpt = 1,
    tolerance: ToleranceOpt = 1e-4,
    db: DbOpt = None,
    artifacts: ArtifactsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import FreqAI sub-train-<COIN>_<timestamp> folders (model, metadata, training frame)."""
    from alphaops.services import importing as svc

    cli = get_context(ctx)
    options = _options(
        trust_pickle=trust_pickle,
        features="ready",
        classes=classes,
        timeframe=timeframe,
        horizon=horizon,
        tolerance=tolerance,
    )
    if dry_run:
        render_plan(cli, svc.plan_freqai_import(path, options), as_json)
        return
    imported = svc.import_freqai_models(
        cli.config, path, options, database_url=db, artifacts=artifacts
    )
    render_imported(cli, imported, as_json)


@app.command("mlflow")
def mlflow(
    ctx: typer.Context,
    tracking_uri: Annotated[
        str, typer.Option("--tracking-uri", help="MLflow tracking/registry URI.")
    ],
    name: Annotated[str, typer.Option("--name", help="MLflow registered model name.")],
    symbol: Annotated[
        str | None, typer.Option("--symbol", help="alphaops symbol (else the 'symbol' tag).")
    ] = None,
    model_type: Annotated[
        str | None, typer.Option("--model-type", help="alphaops model type (else the name).")
    ] = None,
    dry_run: DryRunOpt = False,
    trust_pickle: TrustOpt = False,
    features: FeaturesOpt = "auto",
    classes: ClassesOpt = None,
    timeframe: TimeframeOpt = "1h",
    horizon: HorizonOpt = 1,
    candles: CandlesOpt = None,
    golden: GoldenOpt = None,
    tolerance: ToleranceOpt = 1e-4,
    db: DbOpt = None,
    artifacts: ArtifactsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Copy an MLflow registered model: versions, artifacts (ONNX natively, sklearn pickles
    with --trust-pickle) and aliases (champion/challenger become mlflow-<alias>)."""
    from alphaops.services import importing as svc

    cli = get_context(ctx)
    if dry_run:
        plan = svc.plan_mlflow_import(tracking_uri, name, symbol=symbol, model_type=model_type)
        if as_json:
            cli.print_json({"dry_run": True, "versions": [v.to_dict() for v in plan]})
            return
        table = Table("mlflow", "flavor", "maps to", "features", "aliases", "notes")
        for version in plan:
            data = version.to_dict()
            table.add_row(
                data["mlflow"],
                data["flavor"],
                data["maps_to"],
                str(len(data["features"])),
                ", ".join(f"{k} → {v}" for k, v in data["aliases"].items()),
                "; ".join(data["problems"]) or "ok",
            )
        cli.console.print(table)
        cli.console.print("dry run: nothing was imported")
        return
    options = _options(
        trust_pickle=trust_pickle,
        features=features,
        classes=classes,
        timeframe=timeframe,
        horizon=horizon,
        tolerance=tolerance,
    )
    result = svc.import_mlflow_models(
        cli.config,
        tracking_uri,
        name,
        options,
        symbol=symbol,
        model_type=model_type,
        candles_file=candles,
        rows_file=golden,
        database_url=db,
        artifacts=artifacts,
    )
    if as_json:
        cli.print_json(result.to_dict())
        return
    render_imported(cli, result.versions, False)
    for source, target in result.aliases.items():
        cli.console.print(f"alias {source} → {target}")


def export(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Version to export, e.g. BTCUSDT/lightgbm@champion.")],
    dest: Annotated[Path, typer.Argument(help="Folder the legacy bot reads models from.")],
    name: Annotated[
        str | None, typer.Option("--name", help="File stem (default SYMBOL_TYPE).")
    ] = None,
    layout: Annotated[
        str, typer.Option("--layout", help="flat (<name>.onnx), tree (SYMBOL/TYPE/N), or both.")
    ] = "both",
    latest: Annotated[
        bool, typer.Option("--latest/--no-latest", help="Point the tree's 'latest' link here.")
    ] = True,
    db: DbOpt = None,
    artifacts: ArtifactsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export a version to the flat layout legacy bots read (<name>.onnx + _metadata.json)
    and a SYMBOL/TYPE/VERSION tree with a 'latest' symlink."""
    from alphaops.core.errors import UsageError
    from alphaops.services import importing as svc

    if layout not in ("flat", "tree", "both"):
        raise UsageError(f"--layout {layout!r} is not known", fix="use flat, tree or both")
    cli = get_context(ctx)
    result = svc.export_for_legacy_bots(
        cli.config,
        ref,
        dest,
        name=name,
        layout=layout,  # type: ignore[arg-type]  # checked above
        latest=latest,
        database_url=db,
        artifacts=artifacts,
    )
    if as_json:
        cli.print_json(result.to_dict())
        return
    for path in result.files:
        cli.console.print(f"wrote {path}")
    if result.latest is not None:
        cli.console.print(f"{result.latest} -> {result.latest.readlink()}")
