"""The registry API on SQLite and PostgreSQL: publish, resolve, promote (CAS), rollback, audit."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from alphaops.core.errors import (
    IntegrityError,
    InvalidNameError,
    NotFoundError,
    UsageError,
    VersionConflictError,
)
from alphaops.registry import ANY, PrunePolicy, Registry, open_registry, parse_ref
from alphaops.registry.testing import publish_cleared

KEY = "BTCUSDT/logreg"


def _publish(registry: Registry, make_bundle: Callable[..., Path], n: int) -> list[int]:
    return [publish_cleared(registry, make_bundle()).version for _ in range(n)]


def test_versions_are_numbered_from_one_per_symbol_and_type(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    assert _publish(registry, make_bundle, 3) == [1, 2, 3]
    assert publish_cleared(registry, make_bundle(symbol="ETHUSDT")).version == 1
    assert publish_cleared(registry, make_bundle(model_type="lgbm")).version == 1
    assert [str(k) for k in registry.list_models()] == [
        "BTCUSDT/lgbm",
        "BTCUSDT/logreg",
        "ETHUSDT/logreg",
    ]


def test_a_published_version_keeps_its_manifest_and_files(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    version = publish_cleared(registry, make_bundle(seed=42))
    assert version.manifest.seed == 42
    assert version.location.endswith("/BTCUSDT/logreg/1")
    bundle = registry.load(f"{KEY}/1")
    assert bundle.predict(bundle.reference_inputs()).shape == (8, 2)


def test_resolve_reads_aliases_latest_is_the_champion_and_numbers(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    _publish(registry, make_bundle, 2)
    registry.promote(f"{KEY}/2", expect=None, reason="first champion")
    assert registry.resolve(f"{KEY}@champion").version == 2
    assert registry.resolve(f"{KEY}@latest").version == 2
    assert registry.resolve(KEY).version == 2
    assert registry.resolve(f"{KEY}/1").version == 1
    assert registry.resolve(f"{KEY}/2").aliases == ("champion",)


def test_resolving_an_unset_alias_or_missing_version_says_what_to_do(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    _publish(registry, make_bundle, 1)
    with pytest.raises(NotFoundError, match=r"BTCUSDT/logreg@champion is not set") as info:
        registry.resolve(f"{KEY}@champion")
    assert info.value.fix is not None
    assert "promote" in info.value.fix
    with pytest.raises(NotFoundError, match=r"BTCUSDT/logreg/9 does not exist"):
        registry.resolve(f"{KEY}/9")


def test_promote_moves_the_old_champion_to_previous(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    _publish(registry, make_bundle, 2)
    registry.promote(f"{KEY}/1", expect=None, reason="v1")
    move = registry.promote(f"{KEY}/2", expect=1, reason="v2 beats v1")
    assert (move.from_version, move.to_version) == (1, 2)
    assert registry.aliases(KEY) == {"champion": 2, "previous": 1}


def test_promote_with_stale_expected_version_is_refused(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    _publish(registry, make_bundle, 3)
    registry.promote(f"{KEY}/1", expect=None, reason="v1")
    registry.promote(f"{KEY}/2", expect=1, reason="v2")
    generation, audit_rows = registry.generation(), len(registry.history(KEY))
    with pytest.raises(VersionConflictError, match=r"champion is 2, not the expected 1") as info:
        registry.promote(f"{KEY}/3", expect=1, reason="based on a stale read")
    assert "--expect 2" in (info.value.fix or "")
    assert registry.aliases(KEY) == {"champion": 2, "previous": 1}
    assert registry.generation() == generation
    assert len(registry.history(KEY)) == audit_rows


def test_promote_expecting_no_champion_is_refused_once_one_exists(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    _publish(registry, make_bundle, 2)
    registry.promote(f"{KEY}/1", expect=None, reason="v1")
    with pytest.raises(VersionConflictError, match="not the expected unset"):
        registry.promote(f"{KEY}/2", expect=None, reason="race")


def test_every_alias_move_writes_a_complete_audit_record(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    _publish(registry, make_bundle, 2)
    registry.promote(f"{KEY}/1", expect=None, reason="v1", actor="alice")
    registry.promote(f"{KEY}/2", expect=1, reason="v2 better sharpe", actor="bob")
    moves = [r for r in registry.history(KEY) if r.action != "publish"]
    last = moves[-1]
    assert (last.actor, last.action, last.alias, last.from_version, last.to_version) == (
        "bob",
        "promote",
        "champion",
        1,
        2,
    )
    assert last.reason == "v2 better sharpe"
    assert last.host
    assert last.code_version
    assert last.generation == registry.generation()
    assert [r.action for r in registry.history(KEY)] == ["publish", "publish", "promote", "promote"]


def test_a_move_without_a_reason_is_refused(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    _publish(registry, make_bundle, 1)
    with pytest.raises(UsageError, match="needs a reason"):
        registry.promote(f"{KEY}/1", expect=None, reason=" ")
    assert registry.aliases(KEY) == {}


def test_the_generation_increases_on_every_alias_move(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    _publish(registry, make_bundle, 3)
    seen = [registry.generation()]
    registry.promote(f"{KEY}/1", expect=None, reason="a")
    seen.append(registry.generation())
    registry.promote(f"{KEY}/2", expect=1, reason="b")
    seen.append(registry.generation())
    registry.set_alias(KEY, "challenger", 3, reason="c")
    seen.append(registry.generation())
    registry.rollback(KEY, reason="d")
    seen.append(registry.generation())
    registry.remove_alias(KEY, "challenger", reason="e")
    seen.append(registry.generation())
    assert seen == sorted(set(seen))
    assert len(seen) == 6


def test_rollback_restores_previous_and_never_offers_the_version_it_left(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    _publish(registry, make_bundle, 2)
    registry.promote(f"{KEY}/1", expect=None, reason="v1")
    registry.promote(f"{KEY}/2", expect=1, reason="v2")
    move = registry.rollback(KEY, reason="v2 outputs a constant")
    assert (move.from_version, move.to_version) == (2, 1)
    assert registry.aliases(KEY) == {"champion": 1}
    assert registry.history(KEY)[-1].action == "rollback"
    with pytest.raises(NotFoundError, match="every earlier champion was rolled back from"):
        registry.rollback(KEY, reason="again")


def test_repeated_rollbacks_walk_back_the_champion_history(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    _publish(registry, make_bundle, 4)
    registry.promote(f"{KEY}/1", expect=None, reason="v1")
    for v in (2, 3):
        registry.promote(f"{KEY}/{v}", expect=v - 1, reason=f"v{v}")
    assert registry.rollback(KEY, reason="v3 bad").to_version == 2
    assert registry.aliases(KEY) == {"champion": 2, "previous": 1}
    assert registry.rollback(KEY, reason="v2 bad too").to_version == 1  # not back to 3
    assert registry.aliases(KEY) == {"champion": 1}
    registry.promote(f"{KEY}/4", expect=1, reason="v4")
    assert registry.rollback(KEY, reason="v4 bad").to_version == 1
    assert registry.aliases(KEY) == {"champion": 1}  # 2 and 3 were rolled back from


def test_rollback_to_a_named_former_champion_may_return_to_one_rolled_back_from(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    _publish(registry, make_bundle, 3)
    registry.promote(f"{KEY}/1", expect=None, reason="v1")
    registry.promote(f"{KEY}/2", expect=1, reason="v2")
    registry.rollback(KEY, reason="v2 looked bad")
    move = registry.rollback(KEY, reason="it was the feed, not v2", to=2)
    assert (move.from_version, move.to_version) == (1, 2)
    assert registry.aliases(KEY) == {"champion": 2}
    with pytest.raises(UsageError, match="was never the champion"):
        registry.rollback(KEY, reason="no", to=3)


def test_rollback_without_previous_is_refused(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    _publish(registry, make_bundle, 1)
    registry.promote(f"{KEY}/1", expect=None, reason="v1")
    with pytest.raises(NotFoundError, match="no previous version"):
        registry.rollback(KEY, reason="oops")


def test_reserved_aliases_move_only_by_promote_or_rollback(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    _publish(registry, make_bundle, 1)
    for alias in ("champion", "previous", "latest"):
        with pytest.raises(UsageError, match="moves only by promote or rollback"):
            registry.set_alias(KEY, alias, 1, reason="x")


def test_user_aliases_are_set_compare_and_swapped_and_removed(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    _publish(registry, make_bundle, 2)
    registry.set_alias(KEY, "shadow", 1, reason="try it", expect=None)
    with pytest.raises(VersionConflictError):
        registry.set_alias(KEY, "shadow", 2, reason="race", expect=None)
    registry.set_alias(KEY, "shadow", 2, reason="next", expect=1)
    assert registry.resolve(f"{KEY}@shadow").version == 2
    registry.remove_alias(KEY, "shadow", reason="done", expect=ANY)
    assert "shadow" not in registry.aliases(KEY)


@pytest.mark.parametrize(
    "ref",
    [
        "BTCUSDT/../etc@champion",
        "BTC USDT/logreg",
        "BTCUSDT/logreg@a/b",
        "BTCUSDT/logreg@..",
        "BTCUSDT/logreg/x",
        "/etc/passwd",
        "BTCUSDT\\x/logreg",
    ],
)
def test_unsafe_references_are_refused(ref: str) -> None:
    with pytest.raises(InvalidNameError):
        parse_ref(ref)


def test_an_unsafe_alias_name_is_refused(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    _publish(registry, make_bundle, 1)
    with pytest.raises(InvalidNameError, match=r"alias '\.\./x' is not a safe name"):
        registry.set_alias(KEY, "../x", 1, reason="x")


def test_the_audit_log_cannot_be_edited_even_behind_the_api(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    _publish(registry, make_bundle, 1)
    registry.promote(f"{KEY}/1", expect=None, reason="v1")
    public = {n for n in dir(registry) if not n.startswith("_")}
    assert not {n for n in public if any(w in n for w in ("edit", "delete_audit", "update_audit"))}
    for statement in ("UPDATE audit_log SET reason = 'forged'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), registry.database.write() as conn:
            conn.execute(text(statement))
    assert registry.history(KEY)[-1].reason == "v1"


def test_the_latest_link_follows_the_champion(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    _publish(registry, make_bundle, 2)
    link = Path(registry.artifacts.latest_link(parse_ref(KEY).key))
    registry.promote(f"{KEY}/1", expect=None, reason="v1")
    assert os.readlink(link) == "1"
    assert (link / "model.onnx").is_file()
    registry.promote(f"{KEY}/2", expect=1, reason="v2")
    assert os.readlink(link) == "2"
    registry.rollback(KEY, reason="back")
    assert os.readlink(link) == "1"


def test_verify_finds_a_corrupted_stored_file(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    version = publish_cleared(registry, make_bundle())
    assert registry.verify().ok
    (Path(version.location) / "reports" / "training.md").write_text("edited")
    report = registry.verify()
    assert not report.ok
    assert report.problems[0].where == f"{KEY}/1"
    assert "training.md" in report.problems[0].message
    with pytest.raises(IntegrityError, match=r"training\.md"):
        registry.load(f"{KEY}/1")


def test_prune_keeps_aliased_versions_and_never_reuses_numbers(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    _publish(registry, make_bundle, 6)
    registry.promote(f"{KEY}/1", expect=None, reason="v1")
    registry.promote(f"{KEY}/2", expect=1, reason="v2")
    registry.set_alias(KEY, "challenger", 3, reason="c")
    report = registry.prune(PrunePolicy(keep_last=1))
    assert report.removed == [f"{KEY}/4", f"{KEY}/5"]
    assert [v.version for v in registry.list_versions(KEY)] == [1, 2, 3, 6]
    assert not Path(registry.artifacts.version_dir(parse_ref(KEY).key, 4)).exists()
    assert publish_cleared(registry, make_bundle()).version == 7
    assert registry.verify().ok
    assert registry.doctor().ok


def test_prune_by_size_removes_oldest_unaliased_first(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    sizes = [publish_cleared(registry, make_bundle()).size_bytes for _ in range(4)]
    registry.promote(f"{KEY}/1", expect=None, reason="v1")
    report = registry.prune(PrunePolicy(max_total_bytes=sizes[0] + sizes[3]), dry_run=True)
    assert report.removed == [f"{KEY}/2", f"{KEY}/3"]
    assert report.dry_run
    assert len(registry.list_versions(KEY)) == 4


def test_doctor_repairs_a_stale_latest_link_and_orphaned_folders(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    _publish(registry, make_bundle, 2)
    registry.promote(f"{KEY}/2", expect=None, reason="v2")
    key = parse_ref(KEY).key
    registry.artifacts.fs.point_link(registry.artifacts.latest_link(key), "1")
    orphan = Path(registry.artifacts.version_dir(key, 9))
    orphan.mkdir()
    report = registry.doctor(fix=False, grace_s=0)
    assert {f.kind for f in report.findings} == {"stale_link", "orphan"}
    assert not report.ok
    assert registry.doctor(fix=True, grace_s=0).ok
    assert os.readlink(registry.artifacts.latest_link(key)) == "2"
    assert not orphan.exists()
    assert registry.doctor(grace_s=0).findings == []


def test_export_then_import_gives_an_identical_bundle(
    registry: Registry, make_bundle: Callable[..., Path], tmp_path: Path
) -> None:
    original = publish_cleared(registry, make_bundle(seed=7))
    archive = registry.export(f"{KEY}/1", tmp_path / "v1.tar.gz")
    imported = registry.import_archive(archive)
    assert imported.version == 2
    assert imported.manifest_sha256 == original.manifest_sha256


def test_import_of_a_tampered_archive_is_refused(
    registry: Registry, make_bundle: Callable[..., Path], tmp_path: Path
) -> None:
    import tarfile

    publish_cleared(registry, make_bundle())
    archive = registry.export(f"{KEY}/1", tmp_path / "v1.tar.gz")
    with tarfile.open(archive) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    members["bundle/reports/training.md"] = b"tampered"
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(bad, "w:gz") as tar:
        import io

        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(IntegrityError, match=r"training\.md"):
        registry.import_archive(bad)
    assert [v.version for v in registry.list_versions(KEY)] == [1]


def test_opening_twice_does_not_migrate_again(db_url: str, tmp_path: Path) -> None:
    with open_registry(db_url, artifacts=tmp_path / "a") as first:
        generation = first.generation()
    with open_registry(db_url, artifacts=tmp_path / "a") as second:
        assert second.generation() == generation


def test_the_default_registry_lives_in_the_home(
    tmp_path: Path, make_bundle: Callable[..., Path]
) -> None:
    with open_registry(tmp_path / "home") as reg:
        publish_cleared(reg, make_bundle())
        assert reg.database.dialect == "sqlite"
        with reg.database.read() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert (tmp_path / "home" / "alphaops.db").exists()
    assert (tmp_path / "home" / "artifacts" / "BTCUSDT" / "logreg" / "1" / "model.onnx").exists()


def test_prune_never_removes_a_version_a_rollout_named_or_the_journal_holds_decisions_of(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    from datetime import UTC, datetime

    from alphaops.journal import Decision, Journal
    from alphaops.services.rollout import RolloutController

    _publish(registry, make_bundle, 6)
    registry.promote(f"{KEY}/1", expect=None, reason="v1")
    RolloutController(registry).start(f"{KEY}/3", steps="shadow", interval_s=60)
    RolloutController(registry).abort(KEY, reason="it was judged; keep it reproducible")
    key = parse_ref(KEY).key
    Journal(registry).write_decisions(
        [
            Decision(
                id="d-v4",
                at=datetime(2025, 1, 1, tzinfo=UTC),
                bar_time=datetime(2025, 1, 1, tzinfo=UTC),
                symbol=key.symbol,
                model_type=key.model_type,
                version=4,
                manifest_sha256=registry.get(key, 4).manifest_sha256,
                role="champion",
                rollout_id=None,
                routing_key=None,
                action=1,
                probabilities=(0.3, 0.7),
                input_sha256="0" * 32,
            )
        ]
    )
    assert "challenger" not in registry.aliases(KEY)
    report = registry.prune(PrunePolicy(keep_last=1))
    # v1 champion (aliased), v3 named by a rollout, v4 traded (journal), v6 the newest.
    assert report.removed == [f"{KEY}/2", f"{KEY}/5"]
    assert [v.version for v in registry.list_versions(KEY)] == [1, 3, 4, 6]
