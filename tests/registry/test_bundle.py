"""Bundles verify every file and run a real ONNX smoke test before any use; no pickle."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from alphaops.core.errors import IntegrityError
from alphaops.registry import Bundle, Manifest, manifest_json_schema
from alphaops.registry.manifest import write_manifest_json_schema

REPO = Path(__file__).resolve().parents[2]


def test_a_fresh_bundle_loads_and_its_model_reproduces_the_reference(
    make_bundle: Callable[..., Path],
) -> None:
    bundle = Bundle.load(make_bundle())
    inputs = bundle.reference_inputs()
    probabilities = bundle.predict(inputs)
    assert probabilities.shape == (8, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert [f.path for f in bundle.manifest.files] == [
        "model.onnx",
        "reference.npz",
        "native/weights.json",
        "reports/training.md",
    ]


def test_a_sequence_bundle_declares_lookback_and_features(make_bundle: Callable[..., Path]) -> None:
    bundle = Bundle.load(make_bundle(lookback=5, n_features=3))
    assert bundle.manifest.input.shape == [None, 5, 3]
    assert bundle.predict(bundle.reference_inputs()).shape == (8, 2)


def test_a_flipped_byte_in_the_model_is_refused_naming_the_file(
    make_bundle: Callable[..., Path],
) -> None:
    folder = make_bundle()
    data = bytearray((folder / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01
    (folder / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"model\.onnx does not match its sha256") as info:
        Bundle.load(folder)
    assert info.value.details["file"] == "model.onnx"


def test_a_truncated_file_is_refused_naming_the_file(make_bundle: Callable[..., Path]) -> None:
    folder = make_bundle()
    path = folder / "reference.npz"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(IntegrityError, match=r"reference\.npz has \d+ bytes"):
        Bundle.load(folder)


def test_a_missing_file_is_refused_naming_the_file(make_bundle: Callable[..., Path]) -> None:
    folder = make_bundle()
    (folder / "native" / "weights.json").unlink()
    with pytest.raises(IntegrityError, match=r"native/weights\.json is missing"):
        Bundle.load(folder)


def test_an_unlisted_extra_file_is_refused_naming_the_file(
    make_bundle: Callable[..., Path],
) -> None:
    folder = make_bundle()
    (folder / "reports" / "sneaky.pkl").write_bytes(b"\x80\x04")
    with pytest.raises(IntegrityError, match=r"reports/sneaky\.pkl is not listed"):
        Bundle.load(folder)


def test_a_manifest_that_does_not_match_its_model_is_refused(
    make_bundle: Callable[..., Path],
) -> None:
    # Swap in another bundle's model and fix up its checksum: only the smoke test can tell.
    folder, other = make_bundle(seed=1), make_bundle(seed=2)
    (folder / "model.onnx").write_bytes((other / "model.onnx").read_bytes())
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][0] = json.loads((other / "manifest.json").read_text())["files"][0]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match=r"model\.onnx outputs differ"):
        Bundle.load(folder)


def test_a_manifest_with_an_unknown_field_is_refused(make_bundle: Callable[..., Path]) -> None:
    folder = make_bundle()
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["surprise"] = 1
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match=r"manifest\.json is not a valid manifest: surprise"):
        Bundle.load(folder)


def test_a_manifest_listing_a_path_outside_the_bundle_is_refused(
    make_bundle: Callable[..., Path],
) -> None:
    folder = make_bundle()
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][2]["path"] = "../escape.json"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match=r"must be relative"):
        Bundle.load(folder)


def test_a_reference_batch_holding_pickled_objects_is_refused(
    make_bundle: Callable[..., Path],
) -> None:
    folder = make_bundle()
    import hashlib
    import io

    buffer = io.BytesIO()
    np.savez(buffer, inputs=np.array([object()], dtype=object), expected=np.zeros(1))
    data = buffer.getvalue()
    (folder / "reference.npz").write_bytes(data)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][1].update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match=r"reference\.npz is unreadable"):
        Bundle.load(folder)


def test_the_manifest_is_frozen(make_bundle: Callable[..., Path]) -> None:
    manifest = Bundle.load(make_bundle()).manifest
    with pytest.raises(Exception, match="frozen"):
        manifest.seed = 3  # type: ignore[misc]


def test_the_json_schema_in_the_docs_is_current() -> None:
    committed = REPO / "docs" / "manifest.schema.json"
    assert json.loads(committed.read_text()) == manifest_json_schema(), (
        "docs/manifest.schema.json is stale: regenerate it with "
        "alphaops.registry.manifest.write_manifest_json_schema"
    )


def test_the_json_schema_refuses_unknown_fields_and_requires_file_checksums(tmp_path: Path) -> None:
    schema = json.loads(write_manifest_json_schema(tmp_path / "s.json").read_text())
    assert schema["additionalProperties"] is False
    assert set(schema["$defs"]["FileEntry"]["required"]) == {"path", "sha256", "size"}
    assert Manifest.model_config.get("extra") == "forbid"
