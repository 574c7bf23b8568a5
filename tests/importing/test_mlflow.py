"""``import mlflow`` against a real MLflow SQLite registry made in the test (mlflow-skinny)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import RandomForestClassifier

from alphaops.core.errors import NotFoundError, UntrustedCodeError
from alphaops.core.home import AlphaOpsHome
from alphaops.importing import GoldenData, ImportOptions, import_mlflow, plan_mlflow
from alphaops.registry import open_registry

from .conftest import COLUMNS, Frame

NAME = "btc-direction"
# MLflow's own SQL store uses an SQLAlchemy loader option that SQLAlchemy 2.1 deprecates.
# Logging the fixture models warns about MLflow's type-hint inference: not ours to fix.
pytestmark = [
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning"),
]


@pytest.fixture
def mlflow_registry(tmp_path: Path, btc_features: Frame) -> str:
    """Return the URI of an MLflow registry with an ONNX version 1 and a pickle version 2."""
    import mlflow
    import mlflow.onnx
    import mlflow.sklearn

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("bots", artifact_location=str(tmp_path / "mlartifacts"))
    forest = RandomForestClassifier(n_estimators=8, max_depth=4, random_state=0)
    forest.fit(btc_features.X, btc_features.y)
    onnx_model = convert_sklearn(
        forest,
        initial_types=[("float_input", FloatTensorType([None, len(COLUMNS)]))],
        options={id(forest): {"zipmap": False}},
        target_opset={"": 15, "ai.onnx.ml": 3},
    )
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run(experiment_id=experiment):
            mlflow.onnx.log_model(
                onnx_model, name="onnx", registered_model_name=NAME, pip_requirements=["onnx"]
            )
            mlflow.sklearn.log_model(
                forest,
                name="sk",
                registered_model_name=NAME,
                serialization_format="pickle",
                pip_requirements=["scikit-learn"],
            )
    finally:
        mlflow.set_tracking_uri("")
    client.set_registered_model_tag(NAME, "symbol", "BTCUSDT")
    client.set_registered_model_tag(NAME, "features", json.dumps(COLUMNS))
    client.set_model_version_tag(NAME, "1", "classes", "LOSS,WIN")
    client.set_registered_model_alias(NAME, "champion", "1")
    client.set_registered_model_alias(NAME, "shadow", "2")
    return uri


def test_mlflow_plan_then_import_copies_versions_artifacts_and_aliases(
    mlflow_registry: str, golden: GoldenData, home: AlphaOpsHome
) -> None:
    plan = [v.to_dict() for v in plan_mlflow(mlflow_registry, NAME)]
    assert [(p["mlflow"], p["flavor"], p["maps_to"]) for p in plan] == [
        (f"{NAME}/1", "onnx", f"BTCUSDT/{NAME}"),
        (f"{NAME}/2", "sklearn", f"BTCUSDT/{NAME}"),
    ]
    assert plan[0]["aliases"] == {"champion": "mlflow-champion"}
    assert plan[1]["aliases"] == {"shadow": "shadow"}
    with open_registry(home) as reg:
        with pytest.raises(UntrustedCodeError):
            import_mlflow(mlflow_registry, NAME, ImportOptions(), reg, golden)
        assert reg.list_models() == []  # version 1 (ONNX) was not published alone
        result = import_mlflow(mlflow_registry, NAME, ImportOptions(trust_pickle=True), reg, golden)
        assert result.mapping == {1: f"BTCUSDT/{NAME}/1", 2: f"BTCUSDT/{NAME}/2"}
        assert reg.resolve(f"BTCUSDT/{NAME}@mlflow-champion").version == 1
        assert reg.resolve(f"BTCUSDT/{NAME}@shadow").version == 2
        with pytest.raises(NotFoundError):
            reg.resolve(f"BTCUSDT/{NAME}@champion")  # alphaops's champion needs the gates
        first, second = (v.version.manifest for v in result.versions)
    assert first.provenance is not None
    assert first.provenance.layout == "mlflow"
    assert first.provenance.source == f"mlflow:{NAME}/1"
    assert first.provenance.trusted_code == []
    assert second.provenance is not None
    assert second.provenance.trusted_code != []
    assert first.label.class_order == second.label.class_order == ["LOSS", "WIN"]
    assert first.params["mlflow_version"] == 1


def test_cli_mlflow_dry_run_prints_the_plan(
    mlflow_registry: str, home: AlphaOpsHome, capsys: pytest.CaptureFixture[str]
) -> None:
    from alphaops.cli import main

    args = ["--home", str(home.root), "import", "mlflow", "--tracking-uri", mlflow_registry]
    assert main([*args, "--name", NAME, "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [v["flavor"] for v in plan["versions"]] == ["onnx", "sklearn"]
    assert main([*args, "--name", "no-such-model", "--dry-run"]) == 1
    assert "not_found" in capsys.readouterr().err
