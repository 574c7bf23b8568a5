"""``registry import`` of hostile archives: bombs, unlisted members, links and odd paths.

Every archive here is a real gzip tar built from a real export; the bombs declare 256 MiB of
zeros (about 256 KiB compressed). They must be refused at their header, naming the member and
its size, before their data is decompressed: a fresh process importing one must not grow by
anything like 256 MiB (its peak RSS, ``VmHWM`` after a reset, as a sanity bound; not a speed
test — ``benchmarks/bench_ingest.py`` measures it).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from alphaops.core.errors import IntegrityError, InvalidNameError
from alphaops.registry import Registry, open_registry
from alphaops.registry.testing import build_tiny_bundle

KEY = "BTCUSDT/logreg"
BOMB = 256 * 1024 * 1024


class _Zeros:
    """A readable stream of ``size`` zero bytes that never holds them all in memory."""

    def __init__(self, size: int) -> None:
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return bytes(n)


def _members(archive: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(archive) as tar:
        out = []
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            assert handle is not None
            out.append((member, handle.read()))
        return out


def _rebuild(
    good: Path,
    target: Path,
    *,
    replace: dict[str, int] | None = None,
    extra: list[tarfile.TarInfo] | None = None,
    order: Callable[[list[str]], list[str]] | None = None,
) -> Path:
    """Copy ``good`` member by member; ``replace`` swaps a member's data for N zero bytes."""
    members = {m.name: data for m, data in _members(good)}
    names = order(list(members)) if order else list(members)
    with tarfile.open(target, "w:gz", compresslevel=6) as out:
        for name in names:
            info = tarfile.TarInfo(name)
            if replace and name in replace:
                info.size = replace[name]
                out.addfile(info, _Zeros(info.size))  # type: ignore[arg-type]
            else:
                info.size = len(members[name])
                out.addfile(info, io.BytesIO(members[name]))
        for info in extra or []:
            out.addfile(info, _Zeros(info.size) if info.isfile() else None)  # type: ignore[arg-type]
    return target


@pytest.fixture
def home_registry(tmp_path: Path) -> Registry:
    registry = open_registry(tmp_path / "home", actor="tester")
    registry.publish(build_tiny_bundle(tmp_path / "b1", seed=1))
    return registry


@pytest.fixture
def exported(home_registry: Registry, tmp_path: Path) -> Path:
    return home_registry.export(f"{KEY}/1", tmp_path / "good.tar.gz")


_IMPORT_IN_A_FRESH_PROCESS = """
import json, sys
from pathlib import Path
from alphaops.core.errors import AlphaOpsError
from alphaops.registry import open_registry

def kib(field):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(field))

with open_registry(Path(sys.argv[1])) as registry:
    registry.list_versions()
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # the peak restarts here: import-time peaks cannot hide the import's
    before = kib("VmRSS:")
    try:
        registry.import_archive(Path(sys.argv[2]))
        outcome = {"error": None}
    except AlphaOpsError as exc:
        outcome = {"error": exc.code, "message": exc.message, "details": exc.to_dict()["details"]}
    after = kib("VmHWM:")
print(json.dumps(outcome | {"grew_kib": after - before}))
"""


def _import_in_fresh_process(home: Path, archive: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_IN_A_FRESH_PROCESS, str(home), str(archive)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize(
    ("member", "says"),
    [
        ("bundle/model.onnx", rf"declares {BOMB} bytes, the manifest says \d+"),
        ("bundle/zeros.bin", "is not listed in the manifest"),
    ],
)
def test_an_archive_bomb_is_refused_at_its_header_without_decompressing_it(
    exported: Path, tmp_path: Path, member: str, says: str
) -> None:
    if member == "bundle/model.onnx":
        bomb = _rebuild(exported, tmp_path / "bomb.tar.gz", replace={member: BOMB})
    else:
        info = tarfile.TarInfo(member)
        info.size = BOMB
        bomb = _rebuild(exported, tmp_path / "bomb.tar.gz", extra=[info])
    assert bomb.stat().st_size < 1024 * 1024  # a real bomb: tiny archive, 256 MiB inside
    result = _import_in_fresh_process(tmp_path / "home", bomb)
    assert result["error"] == "integrity_error"
    message = str(result["message"])
    assert f"member {member!r}" in message
    assert str(BOMB) in message or "not listed" in message
    import re

    assert re.search(says, message)
    assert result["details"] == {"file": member, "size": BOMB}
    # Reading the bomb's data into memory costs >= 256 MiB; refusing at the header costs ~0.
    assert int(str(result["grew_kib"])) < 64 * 1024, result
    with open_registry(tmp_path / "home") as registry:
        assert [v.version for v in registry.list_versions(KEY)] == [1]


def _link(name: str, target: str, *, hard: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info


def _file(name: str, size: int = 10) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    return info


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (
            _link("bundle/native/evil", "/etc/passwd"),
            r"'bundle/native/evil' is a link \(to '/etc/passwd'\)",
        ),
        (_link("bundle/hard", "bundle/model.onnx", hard=True), "'bundle/hard' is a link"),
        (_file("/etc/evil"), "'/etc/evil' has an absolute or '..' path"),
        (_file("bundle/../../evil"), "'bundle/../../evil' has an absolute or '..' path"),
        (_file("elsewhere/x"), "'elsewhere/x' is neither alphaops-export.json nor under bundle/"),
        (_file("alphaops-export.json"), "'alphaops-export.json' appears twice"),
        (_file("bundle/manifest.json"), "'bundle/manifest.json' appears twice"),
    ],
)
def test_links_odd_paths_and_duplicates_in_an_archive_are_refused(
    home_registry: Registry, exported: Path, tmp_path: Path, extra: tarfile.TarInfo, says: str
) -> None:
    bad = _rebuild(exported, tmp_path / "bad.tar.gz", extra=[extra])
    with pytest.raises(IntegrityError, match=says) as caught:
        home_registry.import_archive(bad)
    assert caught.value.details["file"] == extra.name
    assert "export" in str(caught.value.fix)
    assert [v.version for v in home_registry.list_versions(KEY)] == [1]


def test_a_member_before_the_manifest_is_refused_as_unchecked(
    home_registry: Registry, exported: Path, tmp_path: Path
) -> None:
    def model_first(names: list[str]) -> list[str]:
        return sorted(names, key=lambda n: n != "bundle/model.onnx")

    bad = _rebuild(exported, tmp_path / "bad.tar.gz", order=model_first)
    with pytest.raises(IntegrityError, match=r"'bundle/model.onnx' comes before bundle/manifest"):
        home_registry.import_archive(bad)


def test_a_file_the_manifest_lists_but_the_archive_lacks_is_named(
    home_registry: Registry, exported: Path, tmp_path: Path
) -> None:
    def without_reference(names: list[str]) -> list[str]:
        return [n for n in names if n != "bundle/reference.npz"]

    bad = _rebuild(exported, tmp_path / "bad.tar.gz", order=without_reference)
    with pytest.raises(IntegrityError, match=r"bundle/reference\.npz is listed in the manifest"):
        home_registry.import_archive(bad)


def test_an_unsafe_file_name_inside_the_bundle_is_refused(
    home_registry: Registry, exported: Path, tmp_path: Path
) -> None:
    bad = _rebuild(exported, tmp_path / "bad.tar.gz", extra=[_file("bundle/.hidden")])
    with pytest.raises(InvalidNameError, match=r"'\.hidden'"):
        home_registry.import_archive(bad)


def test_a_truncated_archive_is_an_integrity_error(
    home_registry: Registry, exported: Path, tmp_path: Path
) -> None:
    data = exported.read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(IntegrityError, match=r"damaged or truncated|sha256"):
        home_registry.import_archive(cut)


def test_an_export_lists_the_manifest_first_and_imports_back(
    home_registry: Registry, exported: Path
) -> None:
    names = [m.name for m, _ in _members(exported)]
    assert names[:2] == ["alphaops-export.json", "bundle/manifest.json"]
    assert home_registry.import_archive(exported).version == 2


def test_an_oversized_export_record_is_refused_before_it_is_read(
    home_registry: Registry, exported: Path, tmp_path: Path
) -> None:
    bad = _rebuild(exported, tmp_path / "bad.tar.gz", replace={"alphaops-export.json": BOMB})
    with pytest.raises(IntegrityError, match=f"declares {BOMB} bytes, more than the 65536"):
        home_registry.import_archive(bad)
