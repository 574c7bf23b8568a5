"""Gate runs in the registry on SQLite and PostgreSQL: append-only, checked, reports attached."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from alphaops.core.errors import IntegrityError, InvalidNameError, NotFoundError, UsageError
from alphaops.registry import GateRun, ModelVersion, Registry, open_registry
from alphaops.registry._db import HEAD_REVISION

KEY = "BTCUSDT/logreg"
DOC = {
    "schema_version": 1,
    "gates": [{"gate": "quality", "passed": True}],
    "window_start": "2024-07-01T00:00:00+00:00",  # after the tiny bundles' training data
    "window_end": "2024-08-01T00:00:00+00:00",
    "note": "ok",
}


def _record(
    registry: Registry,
    version: ModelVersion,
    *,
    passed: bool = True,
    attachments: dict[str, bytes] | None = None,
) -> GateRun:
    return registry.record_gates(
        version.ref,
        manifest_sha256=version.manifest_sha256,
        passed=passed,
        document=DOC | {"passed": passed},
        attachments={"report.md": b"# report\n"} if attachments is None else attachments,
        policy_hash="p" * 16,
    )


def test_a_recorded_gate_run_is_read_back_with_who_where_and_its_reports(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    version = registry.publish(make_bundle())
    run = _record(registry, version, attachments={"a.md": b"# A", "b.html": b"<p>B</p>"})
    assert (run.ref, run.passed, run.policy_hash) == (f"{KEY}/1", True, "p" * 16)
    assert run.document == DOC | {"passed": True}
    assert run.actor == "tester"
    assert run.host
    assert run.code_version
    assert [(a.name, a.size_bytes) for a in run.attachments] == [("a.md", 3), ("b.html", 8)]
    assert registry.latest_gates(f"{KEY}/1") == run
    assert registry.read_gate_attachment(run, "b.html") == b"<p>B</p>"


def test_latest_gates_is_none_until_gates_run_then_the_newest_run_of_that_version(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    v1, v2 = registry.publish(make_bundle()), registry.publish(make_bundle())
    assert registry.latest_gates(v1.ref) is None
    first = _record(registry, v1, passed=False)
    second = _record(registry, v1, passed=True)
    other = _record(registry, v2, passed=False)
    registry.promote(v1.ref, expect=None, reason="gated")
    latest = registry.latest_gates(f"{KEY}@champion")
    assert latest is not None
    assert latest.run_id == second.run_id
    assert [r.run_id for r in registry.gate_runs(v1)] == [first.run_id, second.run_id]
    assert [r.run_id for r in registry.gate_runs(v2)] == [other.run_id]
    assert registry.gate_verdicts(KEY) == {f"{KEY}/1": True, f"{KEY}/2": False}
    assert registry.gate_verdicts(symbol="ETHUSDT") == {}


def test_recording_for_another_manifest_is_refused_and_leaves_nothing_behind(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    version = registry.publish(make_bundle())
    with pytest.raises(IntegrityError, match="gates judged manifest 0000") as caught:
        registry.record_gates(
            version.ref,
            manifest_sha256="0" * 64,
            passed=True,
            document=DOC,
            attachments={"report.md": b"x"},
        )
    assert "alphaops gate run BTCUSDT/logreg/1" in str(caught.value)
    assert registry.gate_runs(version) == []
    assert registry.artifacts.fs.sizes(registry.artifacts.gates_dir(version.key)) == {}


def test_recording_for_an_unknown_version_is_refused(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    registry.publish(make_bundle())
    with pytest.raises(NotFoundError, match=r"BTCUSDT/logreg/9 does not exist"):
        registry.record_gates(f"{KEY}/9", manifest_sha256="0" * 64, passed=True, document=DOC)


def test_a_document_that_is_not_plain_json_or_an_unsafe_report_name_is_refused(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    version = registry.publish(make_bundle())
    sha = version.manifest_sha256
    with pytest.raises(UsageError, match="not plain JSON"):
        registry.record_gates(
            version, manifest_sha256=sha, passed=True, document={"x": float("nan")}
        )
    with pytest.raises(InvalidNameError, match=r"gate attachment name '\.\./x'"):
        registry.record_gates(
            version, manifest_sha256=sha, passed=True, document=DOC, attachments={"../x": b""}
        )
    assert registry.gate_runs(version) == []


def test_gate_runs_and_attachments_cannot_be_edited_even_behind_the_api(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    version = registry.publish(make_bundle())
    _record(registry, version, passed=False)
    public = {n for n in dir(registry) if not n.startswith("_") and "gate" in n}
    assert public == {
        "gate_policy",
        "gate_policy_history",
        "gate_runs",
        "gate_verdicts",
        "latest_gates",
        "read_gate_attachment",
        "record_gates",
        "set_gate_policy",
    }
    for statement in (
        "UPDATE gate_runs SET passed = true",
        "DELETE FROM gate_runs",
        "UPDATE gate_attachments SET sha256 = 'forged'",
        "DELETE FROM gate_attachments",
    ):
        with pytest.raises(DBAPIError, match="append-only"), registry.database.write() as conn:
            conn.execute(text(statement))
    latest = registry.latest_gates(version)
    assert latest is not None
    assert not latest.passed


def test_a_tampered_or_missing_attached_report_is_refused_naming_the_file(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    version = registry.publish(make_bundle())
    run = _record(registry, version)
    path = Path(run.location) / "report.md"
    assert path.read_bytes() == b"# report\n"
    path.write_bytes(b"# forged\n")
    with pytest.raises(IntegrityError, match=r"_gates/1/.*/report\.md .*checksum"):
        registry.read_gate_attachment(run, "report.md")
    path.unlink()
    with pytest.raises(IntegrityError, match=r"report\.md .*is missing"):
        registry.read_gate_attachment(run, "report.md")
    with pytest.raises(NotFoundError, match=r"pick one of: report\.md"):
        registry.read_gate_attachment(run, "other.md")


def test_reports_live_outside_the_bundle_which_still_verifies_and_doctor_keeps_them(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    version = registry.publish(make_bundle())
    run = _record(registry, version)
    assert run.location.endswith(f"/BTCUSDT/logreg/_gates/1/{run.run_id}")
    assert not run.location.startswith(version.location + "/")
    assert registry.verify().ok
    assert registry.doctor(grace_s=0).findings == []
    assert registry.read_gate_attachment(run, "report.md") == b"# report\n"


def test_doctor_sweeps_gate_reports_that_no_recorded_run_names(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    version = registry.publish(make_bundle())
    kept = _record(registry, version)
    stray = registry.artifacts.gate_run_dir(version.key, 1, "deadbeef")
    registry.artifacts.fs.write_bytes(f"{stray}/report.md", b"crashed before its row")
    found = registry.doctor(grace_s=0)
    assert [(f.kind, f.where.rsplit("/", 1)[-1]) for f in found.findings] == [
        ("orphan", "deadbeef")
    ]
    assert registry.doctor(fix=True, grace_s=0).ok
    assert not os.path.exists(stray)
    assert registry.doctor(grace_s=0).findings == []
    assert registry.read_gate_attachment(kept, "report.md") == b"# report\n"


def test_a_registry_at_the_first_revision_is_migrated_to_gate_runs(
    db_url: str, tmp_path: Path, make_bundle: Callable[..., Path]
) -> None:
    from alembic import command
    from alembic.config import Config

    from alphaops.registry._db import _MIGRATIONS

    with open_registry(db_url, artifacts=tmp_path / "a") as reg, reg.database.write() as conn:
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        config.attributes["connection"] = conn
        command.downgrade(config, "0001")
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0001"
    with open_registry(db_url, artifacts=tmp_path / "a") as reg:
        version = reg.publish(make_bundle())
        assert _record(reg, version).passed
        with reg.database.read() as conn:
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        assert revision == HEAD_REVISION == "0007"
