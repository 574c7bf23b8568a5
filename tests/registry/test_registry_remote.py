"""Remote stores: artifacts on a real S3 protocol server, alias moves pushed by PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from alphaops.core.errors import IntegrityError, UsageError
from alphaops.registry import Registry, open_registry
from alphaops.registry.testing import publish_cleared

from .conftest import service_setting

KEY = "BTCUSDT/logreg"


@pytest.fixture
def s3_registry(db_url: str) -> Iterator[Registry]:
    import s3fs

    endpoint = service_setting("ALPHAOPS_TEST_S3_ENDPOINT")
    options = {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}
    bucket = f"alphaops-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(**options).mkdir(bucket)
    with open_registry(db_url, artifacts=f"s3://{bucket}/models", storage_options=options) as reg:
        yield reg


def test_publish_resolve_promote_and_load_through_s3(
    s3_registry: Registry, make_bundle: Callable[..., Path], tmp_path: Path
) -> None:
    assert [publish_cleared(s3_registry, make_bundle()).version for _ in range(2)] == [1, 2]
    s3_registry.promote(f"{KEY}/2", expect=None, reason="on s3")
    found = s3_registry.resolve(f"{KEY}@champion")
    assert found.location.startswith("s3://")
    assert found.location.endswith("/BTCUSDT/logreg/2")
    bundle = s3_registry.load(f"{KEY}@champion", cache_dir=tmp_path / "cache")
    assert bundle.predict(bundle.reference_inputs()).shape == (8, 2)
    assert s3_registry.verify().ok
    assert s3_registry.doctor(grace_s=0).findings == []


def test_gate_runs_keep_their_reports_on_s3_outside_the_bundle(
    s3_registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    version = publish_cleared(s3_registry, make_bundle())
    run = s3_registry.record_gates(
        version.ref,
        manifest_sha256=version.manifest_sha256,
        passed=True,
        document={"passed": True},
        attachments={"report.md": b"# gates passed", "report.html": b"<h1>PASS</h1>"},
    )
    assert run.location.startswith("s3://")
    assert run.location.endswith(f"/BTCUSDT/logreg/_gates/1/{run.run_id}")
    latest = s3_registry.latest_gates(f"{KEY}/1")
    assert latest is not None
    assert s3_registry.read_gate_attachment(latest, "report.html") == b"<h1>PASS</h1>"
    assert s3_registry.verify().ok
    assert s3_registry.doctor(grace_s=0).findings == []
    folder = s3_registry.artifacts.gate_run_dir(version.key, 1, run.run_id)
    s3_registry.artifacts.fs.write_bytes(f"{folder}/report.md", b"# gates failed")
    with pytest.raises(IntegrityError, match=r"s3://.*report\.md .*checksum"):
        s3_registry.read_gate_attachment(latest, "report.md")


def test_a_damaged_object_on_s3_is_found_by_verify(
    s3_registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    version = publish_cleared(s3_registry, make_bundle())
    folder = s3_registry.artifacts.version_dir(version.key, version.version)
    s3_registry.artifacts.fs.write_bytes(f"{folder}/model.onnx", b"not a model")
    report = s3_registry.verify()
    assert not report.ok
    assert "model.onnx" in report.problems[0].message


def test_a_listener_learns_of_every_alias_move_or_is_told_to_poll(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    publish_cleared(registry, make_bundle())
    publish_cleared(registry, make_bundle())
    if registry.database.dialect == "sqlite":
        with pytest.raises(UsageError, match="poll"):
            registry.listen()
        return
    with registry.listen() as listener:
        registry.promote(f"{KEY}/1", expect=None, reason="one")
        registry.promote(f"{KEY}/2", expect=1, reason="two")
        first, second = listener.wait(timeout_s=10), listener.wait(timeout_s=10)
    assert first == {"key": KEY, "alias": "champion", "from": None, "to": 1, "generation": 1}
    assert second is not None
    assert (second["from"], second["to"], second["generation"]) == (1, 2, 2)
