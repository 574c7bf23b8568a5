"""``registry doctor --fix`` beside publishers and promotes, on the real S3 server.

S3 has no folder times, so doctor must age things by the registry's own clocks and re-check a
version's row at the moment it repairs. The interleavings that broke publishes are forced
deterministically (a publish run from inside doctor's listing; a doctor run between a
publisher's status read and its ready write on PostgreSQL), and once more at random with a
real publisher thread beside a doctor loop.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from alphaops.core.errors import AlphaOpsError, VersionConflictError
from alphaops.registry import Registry, open_registry
from alphaops.registry._fs import FileSystem
from alphaops.registry.refs import ModelKey

from .conftest import service_setting

KEY = ModelKey("BTCUSDT", "logreg")


@pytest.fixture
def s3_location(db_url: str) -> tuple[str, str, dict[str, str]]:
    """Return ``(database URL, s3:// artifacts URL, storage options)`` on a fresh bucket."""
    import s3fs

    endpoint = service_setting("ALPHAOPS_TEST_S3_ENDPOINT")
    options = {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}
    bucket = f"alphaops-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(**options).mkdir(bucket)
    return db_url, f"s3://{bucket}/models", options


def _open(location: tuple[str, str, dict[str, str]]) -> Registry:
    db, artifacts, options = location
    return open_registry(db, artifacts=artifacts, storage_options=options, actor="tester")


def _all_ready_versions_have_their_files(registry: Registry) -> None:
    report = registry.verify(smoke_test=False)
    assert report.ok, report.problems


def test_doctor_fix_beside_a_publisher_on_s3_fails_no_publish(
    s3_location: tuple[str, str, dict[str, str]], make_bundle: Callable[..., Path]
) -> None:
    folders = [make_bundle() for _ in range(6)]
    publisher, doctor = _open(s3_location), _open(s3_location)
    published: list[int] = []
    errors: list[BaseException] = []

    def publish_all() -> None:
        try:
            published.extend(publisher.publish(folder).version for folder in folders)
        except BaseException as exc:  # reported below, with what doctor did
            errors.append(exc)

    thread = threading.Thread(target=publish_all)
    thread.start()
    reports = []
    while thread.is_alive():
        reports.append(doctor.doctor(fix=True))  # the CLI's default grace: one hour
    thread.join()
    assert not errors, (errors, [r.findings for r in reports if r.findings])
    assert published == [1, 2, 3, 4, 5, 6]
    assert all(r.findings == [] for r in reports), [r.findings for r in reports]
    _all_ready_versions_have_their_files(doctor)
    publisher.close()
    doctor.close()


class _PublishWhileListed(FileSystem):
    """Doctor's file system: the first listing of the model folder lets a publish finish first.

    This is the moment the old doctor lost files: it had read the version rows, the new
    version's row was not among them, and S3 gave the new folder no time.
    """

    def __init__(self, inner: FileSystem, model_dir: str, publish: Callable[[], Any]) -> None:
        super().__init__(inner._fs, local=inner.local)
        self._model_dir = model_dir
        self._publish: Callable[[], Any] | None = publish

    def listdir(self, path: str) -> list[tuple[str, bool]]:
        if path == self._model_dir and self._publish is not None:
            publish, self._publish = self._publish, None
            publish()
        return super().listdir(path)


@pytest.mark.parametrize("grace_s", [0.0, 3600.0])
def test_a_version_published_after_doctor_read_the_rows_keeps_its_files(
    s3_location: tuple[str, str, dict[str, str]],
    make_bundle: Callable[..., Path],
    grace_s: float,
) -> None:
    publisher, doctor = _open(s3_location), _open(s3_location)
    publisher.publish(make_bundle())
    late = make_bundle()
    doctor.artifacts.fs = _PublishWhileListed(
        doctor.artifacts.fs, doctor.artifacts.model_dir(KEY), lambda: publisher.publish(late)
    )
    report = doctor.doctor(fix=True, grace_s=grace_s)
    assert report.findings == []
    assert [v.version for v in publisher.list_versions(KEY)] == [1, 2]
    _all_ready_versions_have_their_files(publisher)
    publisher.close()
    doctor.close()


# SQLite's write lock spans the publisher's status read and write: doctor cannot run between.
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_doctor_with_zero_grace_between_a_status_read_and_the_ready_write_fails_the_publish(
    s3_location: tuple[str, str, dict[str, str]], make_bundle: Callable[..., Path]
) -> None:
    publisher, doctor = _open(s3_location), _open(s3_location)
    fired: list[Any] = []

    @event.listens_for(publisher.database.writer, "before_cursor_execute")
    def _between(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        ready = statement.startswith("UPDATE versions SET status") and "ready" in str(params)
        if ready and not fired:
            # Another process's doctor, run to completion at the worst moment.
            runner = threading.Thread(
                target=lambda: fired.append(doctor.doctor(fix=True, grace_s=0))
            )
            runner.start()
            runner.join()

    with pytest.raises(VersionConflictError, match="left 'pending' before it could become"):
        publisher.publish(make_bundle())
    assert [f.kind for f in fired[0].findings] == ["stuck"]
    assert publisher.list_versions(KEY) == []
    assert [v.status for v in publisher.list_versions(KEY, all_statuses=True)] == ["failed"]
    _all_ready_versions_have_their_files(publisher)
    assert publisher.publish(make_bundle()).version == 2
    publisher.close()
    doctor.close()


def test_a_publish_whose_pending_row_doctor_failed_mid_move_is_a_version_conflict(
    s3_location: tuple[str, str, dict[str, str]], make_bundle: Callable[..., Path]
) -> None:
    # Doctor (grace 0) fails the pending row and removes its files while the publisher moves
    # them into place: the publisher must say so, not fail on the illegal 'failed' -> 'failed'.
    publisher, doctor = _open(s3_location), _open(s3_location)
    fs = publisher.artifacts.fs
    move_tree = fs.move_tree

    def doctor_first(source: str, target: str) -> None:
        doctor.doctor(fix=True, grace_s=0)
        move_tree(source, target)

    fs.move_tree = doctor_first  # type: ignore[method-assign]
    try:
        with pytest.raises(VersionConflictError, match="left 'pending' before it could become"):
            publisher.publish(make_bundle())
    finally:
        fs.move_tree = move_tree  # type: ignore[method-assign]
    assert [v.status for v in publisher.list_versions(KEY, all_statuses=True)] == ["failed"]
    assert publisher.publish(make_bundle()).version == 2
    _all_ready_versions_have_their_files(publisher)
    publisher.close()
    doctor.close()


def test_zero_grace_doctor_loop_beside_a_publisher_never_leaves_a_ready_version_without_files(
    s3_location: tuple[str, str, dict[str, str]], make_bundle: Callable[..., Path]
) -> None:
    folders = [make_bundle() for _ in range(6)]
    publisher, doctor = _open(s3_location), _open(s3_location)
    outcomes: list[int | str] = []

    def publish_all() -> None:
        for folder in folders:
            try:
                outcomes.append(publisher.publish(folder).version)
            except AlphaOpsError as exc:  # doctor --grace-s 0 may fail a publish: typed
                outcomes.append(exc.code)

    thread = threading.Thread(target=publish_all)
    thread.start()
    while thread.is_alive():
        doctor.doctor(fix=True, grace_s=0)
    thread.join()
    assert len(outcomes) == len(folders)
    assert all(
        isinstance(o, int) or o in ("version_conflict", "integrity_error") for o in outcomes
    ), outcomes
    _all_ready_versions_have_their_files(doctor)
    doctor.doctor(fix=True, grace_s=0)
    assert doctor.doctor(grace_s=0).findings == []
    ready = {v.version for v in doctor.list_versions(KEY)} if doctor.list_models() else set()
    assert ready == {o for o in outcomes if isinstance(o, int)}
    publisher.close()
    doctor.close()


def test_a_fresh_temporary_latest_link_is_left_to_its_promote(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    registry.publish(make_bundle())
    folder = Path(registry.artifacts.model_dir(KEY))
    fresh, old = folder / ".latest.fresh", folder / ".latest.old"
    os.symlink("1", fresh)
    os.symlink("1", old)
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago), follow_symlinks=False)
    report = registry.doctor(fix=True, grace_s=60)
    assert [(f.kind, Path(f.where).name) for f in report.findings] == [("orphan", ".latest.old")]
    assert fresh.is_symlink()
    assert not old.is_symlink()


def test_a_staging_upload_in_progress_on_s3_survives_doctor_fix(
    s3_location: tuple[str, str, dict[str, str]],
) -> None:
    registry = _open(s3_location)
    store = registry.artifacts
    uploading = store.new_staging_dir()
    store.fs.write_bytes(f"{uploading}/model.onnx", b"half an upload")
    assert registry.doctor(fix=True).findings == []
    assert store.fs.exists(f"{uploading}/model.onnx")
    registry.close()


def test_staging_folders_are_aged_by_the_time_in_their_name_and_their_newest_file(
    registry: Registry,
) -> None:
    store = registry.artifacts
    two_hours_ago = time.time() - 7200
    fresh = store.new_staging_dir()
    old = f"{store.root}/.staging/{int(two_hours_ago * 1000)}-{uuid.uuid4().hex}"
    old_name_new_file = f"{store.root}/.staging/{int(two_hours_ago * 1000)}-{uuid.uuid4().hex}"
    for folder in (fresh, old, old_name_new_file):
        store.fs.write_bytes(f"{folder}/native/model.txt", b"half an upload")
    for path in (f"{old}/native/model.txt", f"{old}/native", old):
        os.utime(path, (two_hours_ago, two_hours_ago))
    report = registry.doctor(fix=True, grace_s=3600)
    assert [f.where for f in report.findings] == [store.display(old)]
    assert os.path.exists(fresh)
    assert os.path.exists(old_name_new_file)
    assert not os.path.exists(old)
